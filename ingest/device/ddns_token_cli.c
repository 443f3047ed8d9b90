/*
 * ddns_token_cli: print a ddnsd device token, for tests and for trying a key by hand.
 *
 *   ddns_token_cli KEY_HEX KEY_ID MAC ISSUED_AT [NONCE_HEX]
 *
 * KEY_HEX is 64 hex digits, NONCE_HEX (tests only) 24. Exits 0 and prints the token, or exits 1
 * with a message on stderr.
 *
 * Licensed under the Apache License, Version 2.0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddns_token.h"

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int parse_hex(const char *hex, uint8_t *out, size_t len) {
    size_t i;
    if (strlen(hex) != 2 * len) return -1;
    for (i = 0; i < len; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int parse_u64(const char *s, unsigned long long max, unsigned long long *out) {
    char *end;
    if (s[0] < '0' || s[0] > '9') return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return (errno != 0 || *end != '\0' || *out > max) ? -1 : 0;
}

int main(int argc, char **argv) {
    uint8_t key[32], nonce[12];
    unsigned long long key_id, issued_at;
    char token[DDNS_TOKEN_BUF_LEN];
    int n;

    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s KEY_HEX KEY_ID MAC ISSUED_AT [NONCE_HEX]\n", argv[0]);
        return 1;
    }
    if (parse_hex(argv[1], key, sizeof key) != 0) {
        fprintf(stderr, "KEY_HEX must be 64 hex digits\n");
        return 1;
    }
    if (parse_u64(argv[2], 65535, &key_id) != 0) {
        fprintf(stderr, "KEY_ID must be 0..65535\n");
        return 1;
    }
    if (parse_u64(argv[4], UINT64_MAX, &issued_at) != 0) {
        fprintf(stderr, "ISSUED_AT must be Unix seconds (0 for none)\n");
        return 1;
    }
    if (argc == 6) {
        if (parse_hex(argv[5], nonce, sizeof nonce) != 0) {
            fprintf(stderr, "NONCE_HEX must be 24 hex digits\n");
            return 1;
        }
        n = ddns_token_seal_with_nonce(key, (uint16_t)key_id, argv[3], issued_at, nonce, token,
                                       sizeof token);
    } else {
        n = ddns_token_seal(key, (uint16_t)key_id, argv[3], issued_at, token, sizeof token);
    }
    if (n < 0) {
        fprintf(stderr, "ddns_token_seal failed: %d\n", n);
        return 1;
    }
    printf("%s\n", token);
    return 0;
}
