/*
 * ddns_token: seal a device credential (the `mac=TOKEN` field) for a ddnsd server.
 *
 * Compile ddns_token.c into the firmware and link it against OpenSSL's libcrypto (1.1 or 3.x).
 * The token format is documented in ddnsd's ingest/src/token.rs:
 *
 *   TOKEN = base64url( version u8 = 1 | key_id u16 BE | nonce [12]
 *                      | AES-256-GCM(key, nonce, aad = the 3 header bytes,
 *                                    plaintext = issued_at u64 BE | mac) | tag [16] )
 *
 * The output is unpadded base64url, so it can be put in a URL without further encoding.
 *
 * Licensed under the Apache License, Version 2.0.
 */
#ifndef DDNS_TOKEN_H
#define DDNS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest accepted MAC address or serial, in bytes. */
#define DDNS_TOKEN_MAC_MAX 64
/* A buffer this large holds any token and its terminating NUL. */
#define DDNS_TOKEN_BUF_LEN 140

/* Errors (all negative). */
#define DDNS_TOKEN_EINVAL  (-1) /* a NULL argument */
#define DDNS_TOKEN_EBADMAC (-2) /* mac empty, longer than 64, or not [A-Za-z0-9:.-] */
#define DDNS_TOKEN_ENOSPC  (-3) /* out_len too small: use DDNS_TOKEN_BUF_LEN */
#define DDNS_TOKEN_ECRYPTO (-4) /* OpenSSL failed */
#define DDNS_TOKEN_ERANDOM (-5) /* no random nonce available (RAND_bytes failed) */

/*
 * Seals `mac` (NUL-terminated) with the vendor key `key` whose id is `key_id`.
 *
 * `issued_at` is the current Unix time in seconds if the vendor requires fresh tokens (then seal
 * a new token for every request: each is accepted once), or 0 for a token the device can store
 * and reuse. The nonce comes from OpenSSL's RAND_bytes.
 *
 * Writes the NUL-terminated token to `out` and returns its length (without the NUL), or a
 * negative DDNS_TOKEN_E* error, in which case `out` holds an empty string if out_len > 0.
 */
int ddns_token_seal(const uint8_t key[32], uint16_t key_id, const char *mac, uint64_t issued_at,
                    char *out, size_t out_len);

/*
 * As ddns_token_seal, with the caller's nonce. For tests only: a nonce must never be used twice
 * with the same key, or both tokens' contents and the key's authenticity are lost.
 */
int ddns_token_seal_with_nonce(const uint8_t key[32], uint16_t key_id, const char *mac,
                               uint64_t issued_at, const uint8_t nonce[12], char *out,
                               size_t out_len);

#ifdef __cplusplus
}
#endif

#endif /* DDNS_TOKEN_H */
