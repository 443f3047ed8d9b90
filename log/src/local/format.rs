//! Byte layout of segment files: names, the segment header, record frames.
//! (The format itself is described in the parent module's docs.)

use std::path::Path;

/// The first bytes of every segment file: magic and format version 1.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"DDNSLOG1";
/// Length of the segment header.
pub(crate) const HEADER_LEN: u64 = SEGMENT_MAGIC.len() as u64;
/// `body_len: u32` and `crc: u32`, before the body.
pub(crate) const FRAME_PREFIX_LEN: usize = 8;
/// `offset: u64` and `key_len: u32`, the body's fixed part.
pub(crate) const BODY_FIXED_LEN: usize = 12;
/// Digits in a segment file name (every u64 fits).
const NAME_DIGITS: usize = 20;
/// Extension of segment files.
const EXTENSION: &str = ".log";

/// The file name of the segment whose first record has offset `base`.
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:0NAME_DIGITS$}{EXTENSION}")
}

/// The base offset of a segment file, or `None` if the name is not a segment's.
pub(crate) fn parse_segment_file_name(path: &Path) -> Option<u64> {
    let digits = path.file_name()?.to_str()?.strip_suffix(EXTENSION)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Bytes a record with this key and payload takes on disk.
pub(crate) fn frame_len(key_len: usize, payload_len: usize) -> usize {
    FRAME_PREFIX_LEN + BODY_FIXED_LEN + key_len + payload_len
}

/// Appends the frame of record `offset` to `buf`.
///
/// The caller has checked the size against `max_record_bytes`, which keeps it far below `u32`.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, offset: u64, key: &[u8], payload: &[u8]) {
    let body_len = BODY_FIXED_LEN + key.len() + payload.len();
    let body_len =
        u32::try_from(body_len).expect("record size is checked against max_record_bytes");
    let key_len = u32::try_from(key.len()).expect("key size is checked against max_record_bytes");
    let offset = offset.to_le_bytes();
    let key_len = key_len.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&offset);
    crc.update(&key_len);
    crc.update(key);
    crc.update(payload);
    buf.reserve(FRAME_PREFIX_LEN + body_len as usize);
    buf.extend_from_slice(&body_len.to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(&offset);
    buf.extend_from_slice(&key_len);
    buf.extend_from_slice(key);
    buf.extend_from_slice(payload);
}

/// The frame prefix: `(body_len, crc)`.
pub(crate) fn parse_prefix(prefix: [u8; FRAME_PREFIX_LEN]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = prefix;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// Checks a frame's `body_len` against the bytes available after its prefix.
pub(crate) fn check_body_len(body_len: u32, available: u64) -> Result<usize, &'static str> {
    if (body_len as usize) < BODY_FIXED_LEN {
        return Err("record length below the minimum");
    }
    if u64::from(body_len) > available {
        return Err("record extends past the end of the data");
    }
    Ok(body_len as usize)
}

/// A decoded record body, borrowing the frame.
pub(crate) struct Body<'a> {
    pub(crate) offset: u64,
    pub(crate) key: &'a [u8],
    pub(crate) payload: &'a [u8],
}

/// Verifies a frame's body against its CRC and splits it.
pub(crate) fn parse_body(body: &[u8], crc: u32) -> Result<Body<'_>, &'static str> {
    if body.len() < BODY_FIXED_LEN {
        return Err("record length below the minimum");
    }
    if crc32fast::hash(body) != crc {
        return Err("record CRC mismatch");
    }
    let (offset, rest) = body.split_first_chunk::<8>().expect("length checked above");
    let (key_len, rest) = rest.split_first_chunk::<4>().expect("length checked above");
    let key_len = u32::from_le_bytes(*key_len) as usize;
    if key_len > rest.len() {
        return Err("record key length past the record's end");
    }
    let (key, payload) = rest.split_at(key_len);
    Ok(Body {
        offset: u64::from_le_bytes(*offset),
        key,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name(Path::new("/x/00000000000000000042.log")),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(Path::new(&segment_file_name(u64::MAX))),
            Some(u64::MAX)
        );
        for bad in [
            "42.log",
            "0000000000000000004a.log",
            "00000000000000000042.tmp",
            "LOCK",
        ] {
            assert_eq!(parse_segment_file_name(Path::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn frame_roundtrip_and_damage() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 7, b"key", b"payload");
        assert_eq!(buf.len(), frame_len(3, 7));
        let (prefix, body) = buf.split_first_chunk::<FRAME_PREFIX_LEN>().expect("prefix");
        let (body_len, crc) = parse_prefix(*prefix);
        assert_eq!(check_body_len(body_len, body.len() as u64), Ok(body.len()));
        let parsed = parse_body(body, crc).expect("valid frame");
        assert_eq!(
            (parsed.offset, parsed.key, parsed.payload),
            (7, &b"key"[..], &b"payload"[..])
        );

        assert!(check_body_len(body_len, body.len() as u64 - 1).is_err());
        assert!(check_body_len(11, 100).is_err());
        let mut flipped = body.to_vec();
        flipped[14] ^= 1;
        assert_eq!(parse_body(&flipped, crc).err(), Some("record CRC mismatch"));
        assert!(parse_body(body, crc ^ 1).is_err());
    }

    #[test]
    fn key_length_past_end_is_rejected_even_with_a_valid_crc() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&99u32.to_le_bytes());
        body.extend_from_slice(b"short");
        assert!(parse_body(&body, crc32fast::hash(&body)).is_err());
    }
}
