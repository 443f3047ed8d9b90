//! The QUIC device channel's messages ([`ddns_client::wire`]), both directions: whatever
//! decodes re-encodes to exactly its bytes and decodes to the same value (the encoding is
//! canonical, so a message means one thing to both ends), a decoded HELLO fits the encoder's
//! limits, and a length prefix is taken only for a body of 1 to 512 bytes.
//!
//! Input: a selector byte, then: `0` a request body (what the server decodes), `1` a server
//! message body (what a device decodes), `2` two bytes of length prefix.

use ddns_client::wire::{MESSAGE_MAX, Request, ServerMessage, body_len};

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        // The frame reader hands over no longer body (`body_len`, the third case).
        _ if which % 3 < 2 && body.len() > MESSAGE_MAX => {}
        0 => {
            if let Ok(request) = Request::decode(body) {
                assert!(request.fits(), "{request:?} decoded but does not fit");
                let encoded = request.encode();
                assert_same(body, &encoded);
                assert_eq!(Request::decode(&encoded[2..]), Ok(request));
            }
        }
        1 => {
            if let Ok(message) = ServerMessage::decode(body) {
                let encoded = message.encode();
                assert_same(body, &encoded);
                assert_eq!(ServerMessage::decode(&encoded[2..]), Ok(message));
            }
        }
        _ => {
            let Some(prefix) = body.first_chunk::<2>() else {
                return;
            };
            let announced = usize::from(u16::from_be_bytes(*prefix));
            match body_len(*prefix) {
                Ok(n) => assert!(n == announced && (1..=MESSAGE_MAX).contains(&n)),
                Err(_) => assert!(
                    announced == 0 || announced > MESSAGE_MAX,
                    "a prefix of {announced} refused"
                ),
            }
        }
    }
}

/// `encoded` is `body` behind its length prefix.
fn assert_same(body: &[u8], encoded: &[u8]) {
    assert_eq!(&encoded[2..], body, "re-encoded differently");
    assert_eq!(
        usize::from(u16::from_be_bytes([encoded[0], encoded[1]])),
        body.len()
    );
}
