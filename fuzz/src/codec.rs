//! The event codec and the snapshot's records (`ddns_core::codec`): every input that decodes
//! re-encodes to exactly its bytes, and decodes again to the same value (the layout's
//! documented invariant; hickory's fuzz/fuzz_targets/message.rs checks the same of DNS).
//!
//! Input: a selector byte, then the bytes to decode: `0` an event, `1` a device record, `2` a
//! people key, `3` a people entry (a key's length byte, the key, then the entry).

use ddns_core::{
    decode_device, decode_event, decode_people_entry, decode_people_key, encode_device,
    encode_event, encode_people_entry, encode_people_key,
};

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => event(bytes),
        1 => device(bytes),
        2 => people_key(bytes),
        _ => people_entry(bytes),
    }
}

fn event(bytes: &[u8]) {
    let Ok(event) = decode_event(bytes) else {
        return;
    };
    let encoded = encode_event(&event).expect("a decoded event encodes");
    assert_eq!(
        encoded, bytes,
        "encode(decode(bytes)) != bytes for {event:?}"
    );
    assert_eq!(decode_event(&encoded).as_ref(), Ok(&event));
}

fn device(bytes: &[u8]) {
    let Ok(device) = decode_device(bytes) else {
        return;
    };
    let encoded = encode_device(&device).expect("a decoded device encodes");
    assert_eq!(
        encoded, bytes,
        "encode(decode(bytes)) != bytes for {device:?}"
    );
    assert_eq!(decode_device(&encoded).as_ref(), Ok(&device));
}

fn people_key(bytes: &[u8]) {
    let Ok(key) = decode_people_key(bytes) else {
        return;
    };
    let encoded = encode_people_key(&key);
    assert_eq!(encoded, bytes, "encode(decode(bytes)) != bytes for {key:?}");
    assert_eq!(decode_people_key(&encoded).as_ref(), Ok(&key));
}

/// Version 1 entries (hosts before ACME values) are re-encoded as version 2: for those the value
/// must survive, for version 2 the bytes too.
fn people_entry(bytes: &[u8]) {
    let Some((&key_len, rest)) = bytes.split_first() else {
        return;
    };
    let Some((key, entry_bytes)) = rest.split_at_checked(usize::from(key_len)) else {
        return;
    };
    let Ok(key) = decode_people_key(key) else {
        return;
    };
    let Ok(entry) = decode_people_entry(&key, entry_bytes) else {
        return;
    };
    let encoded = encode_people_entry(&entry).expect("a decoded entry encodes");
    if entry_bytes.first() == Some(&2) {
        assert_eq!(
            encoded, entry_bytes,
            "encode(decode(bytes)) != bytes for {entry:?}"
        );
    }
    assert_eq!(decode_people_entry(&key, &encoded).as_ref(), Ok(&entry));
}
