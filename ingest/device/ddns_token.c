/*
 * ddns_token: seal a device credential for a ddnsd server. See ddns_token.h.
 *
 * Licensed under the Apache License, Version 2.0.
 */
#include "ddns_token.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define VERSION 1
#define HEADER_LEN 3
#define NONCE_LEN 12
#define ISSUED_AT_LEN 8
#define TAG_LEN 16
#define RAW_MAX (HEADER_LEN + NONCE_LEN + ISSUED_AT_LEN + DDNS_TOKEN_MAC_MAX + TAG_LEN)

static const char BASE64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int mac_char_ok(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == ':' || c == '.' || c == '-';
}

/* Unpadded base64url of in[0..len) into out; returns the length written, or -1 if it won't fit
 * with its NUL. */
static int base64url(const uint8_t *in, size_t len, char *out, size_t out_len) {
    size_t need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
    size_t i, o = 0;
    if (need + 1 > out_len) {
        return -1;
    }
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = BASE64URL[v >> 18 & 63];
        out[o++] = BASE64URL[v >> 12 & 63];
        out[o++] = BASE64URL[v >> 6 & 63];
        out[o++] = BASE64URL[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = BASE64URL[v >> 18 & 63];
        out[o++] = BASE64URL[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = BASE64URL[v >> 18 & 63];
        out[o++] = BASE64URL[v >> 12 & 63];
        out[o++] = BASE64URL[v >> 6 & 63];
    }
    out[o] = '\0';
    return (int)o;
}

int ddns_token_seal_with_nonce(const uint8_t key[32], uint16_t key_id, const char *mac,
                               uint64_t issued_at, const uint8_t nonce[12], char *out,
                               size_t out_len) {
    uint8_t raw[RAW_MAX];
    uint8_t *body = raw + HEADER_LEN + NONCE_LEN;
    size_t mac_len, body_len, i;
    EVP_CIPHER_CTX *ctx;
    int len, ok, written;

    if (out != NULL && out_len > 0) {
        out[0] = '\0';
    }
    if (key == NULL || mac == NULL || nonce == NULL || out == NULL) {
        return DDNS_TOKEN_EINVAL;
    }
    mac_len = strlen(mac);
    if (mac_len == 0 || mac_len > DDNS_TOKEN_MAC_MAX) {
        return DDNS_TOKEN_EBADMAC;
    }
    for (i = 0; i < mac_len; i++) {
        if (!mac_char_ok(mac[i])) {
            return DDNS_TOKEN_EBADMAC;
        }
    }

    raw[0] = VERSION;
    raw[1] = (uint8_t)(key_id >> 8);
    raw[2] = (uint8_t)key_id;
    memcpy(raw + HEADER_LEN, nonce, NONCE_LEN);
    for (i = 0; i < ISSUED_AT_LEN; i++) {
        body[i] = (uint8_t)(issued_at >> (56 - 8 * i));
    }
    memcpy(body + ISSUED_AT_LEN, mac, mac_len);
    body_len = ISSUED_AT_LEN + mac_len;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return DDNS_TOKEN_ECRYPTO;
    }
    /* Encrypt the body in place: EVP allows out == in. The header is the AAD. */
    ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
         EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
         EVP_EncryptUpdate(ctx, NULL, &len, raw, HEADER_LEN) == 1 &&
         EVP_EncryptUpdate(ctx, body, &len, body, (int)body_len) == 1 && (size_t)len == body_len &&
         EVP_EncryptFinal_ex(ctx, body + body_len, &len) == 1 && len == 0 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, body + body_len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(raw, sizeof raw);
        return DDNS_TOKEN_ECRYPTO;
    }

    written = base64url(raw, HEADER_LEN + NONCE_LEN + body_len + TAG_LEN, out, out_len);
    OPENSSL_cleanse(raw, sizeof raw);
    return written < 0 ? DDNS_TOKEN_ENOSPC : written;
}

int ddns_token_seal(const uint8_t key[32], uint16_t key_id, const char *mac, uint64_t issued_at,
                    char *out, size_t out_len) {
    uint8_t nonce[NONCE_LEN];
    if (out != NULL && out_len > 0) {
        out[0] = '\0';
    }
    if (RAND_bytes(nonce, NONCE_LEN) != 1) {
        return DDNS_TOKEN_ERANDOM;
    }
    return ddns_token_seal_with_nonce(key, key_id, mac, issued_at, nonce, out, out_len);
}
