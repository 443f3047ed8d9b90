/*
 * ddns_client: a reference device client for a ddnsd server's device API.
 *
 * It follows the update-client rules of the device API (SPEC section 2, seed 002):
 *
 *   - on start it sends one update even if nothing changed (`add.aspx` with the label `dm` when
 *     it has no state file yet, else `update.aspx`);
 *   - then, every poll interval, it asks `ipdetect.aspx` for its WAN address and sends
 *     `update.aspx` only when that differs from the address the server last acknowledged;
 *   - it stores an address (in the state file) only after the server acknowledged it
 *     (`08`, `09` or `10|name`);
 *   - on `911` (flood) it backs off exponentially with jitter, up to an hour (and so on a
 *     refusal: `01`, `02`, `04`, `07`); on `12` or a network error it tries again at the next
 *     poll.
 *
 * Every request carries a freshly sealed token (ddns_token.c): a token carries its issue time,
 * and a vendor with `max_age_secs` accepts each one once. HTTPS certificates are verified
 * (libcurl's default CA store, or --cacert for a private CA). Each action is one line on stderr.
 *
 * Build (see README.md):
 *   cc -std=c99 -Wall -Wextra -Wpedantic -O2 ddns_client.c ddns_token.c -o ddns_client \
 *      -lcurl -lcrypto
 *
 * Licensed under the Apache License, Version 2.0.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ddns_token.h"

#define ADDR_MAX 64          /* an IPv6 address in text is at most 45 characters */
#define REPLY_MAX 256        /* longest reply kept; the device API's are a few bytes */
#define URL_MAX 1024
#define PATH_LEN 1024
#define INTERVAL_MIN_SECS 60 /* the seed: poll "every few minutes" */
#define BACKOFF_MAX_SECS 3600

struct options {
    const char *server;     /* base URL, e.g. https://ddns.example.com */
    uint8_t key[32];
    long key_id;            /* -1 until given */
    int have_key;
    const char *mac;
    const char *label;      /* dm for the first registration, or NULL */
    const char *state_path; /* the acknowledged address */
    long interval_secs;
    long max_polls;         /* 0: run until SIGTERM */
    int test_mode;          /* every wait in milliseconds instead of seconds */
    const char *cacert;
    const char *bind;
    const char *user_agent;
};

/* What a request came to. */
enum outcome { ACKED, FLOOD, RETRY, REFUSED, NOT_FOUND };

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void logf_line(const char *fmt, ...)
{
    va_list args;
    fputs("ddns_client: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}

static void usage(FILE *out)
{
    fputs("usage: ddns_client --server URL --mac MAC --state FILE\n"
          "         (--key-file FILE | --key-id ID --key HEX) [--label LABEL]\n"
          "         [--interval SECS] [--cacert FILE] [--bind ADDR] [--user-agent UA]\n"
          "         [--once | --max-polls N] [--test]\n",
          out);
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_key_hex(const char *hex, uint8_t key[32])
{
    size_t i;
    if (strlen(hex) != 64)
        return -1;
    for (i = 0; i < 32; i++) {
        unsigned int byte;
        char pair[3];
        pair[0] = hex[2 * i];
        pair[1] = hex[2 * i + 1];
        pair[2] = '\0';
        if (strspn(pair, "0123456789abcdefABCDEF") != 2 || sscanf(pair, "%2x", &byte) != 1)
            return -1;
        key[i] = (uint8_t)byte;
    }
    return 0;
}

/* A key file holds `ID HEX` (as ddnsd writes DATA_DIR/keys/VENDOR.key) or just `HEX`. */
static int read_key_file(const char *path, struct options *opt)
{
    char line[160], first[80], second[80];
    int fields, ok = -1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fgets(line, sizeof line, f) != NULL) {
        fields = sscanf(line, "%79s %79s", first, second);
        if (fields == 2)
            ok = (parse_long(first, 0, 65535, &opt->key_id) == 0 &&
                  parse_key_hex(second, opt->key) == 0) ? 0 : -1;
        else if (fields == 1)
            ok = parse_key_hex(first, opt->key);
    }
    fclose(f);
    memset(line, 0, sizeof line);
    memset(second, 0, sizeof second);
    memset(first, 0, sizeof first);
    return ok;
}

/* Returns 0 to run, 1 for --help, -1 after reporting a bad option. */
static int parse_options(int argc, char **argv, struct options *opt)
{
    int i;
    memset(opt, 0, sizeof *opt);
    opt->key_id = -1;
    opt->interval_secs = 300;
    opt->user_agent = "ddnsd - ddns_client - 1.0";
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = 1;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            return 1;
        } else if (strcmp(arg, "--once") == 0) {
            opt->max_polls = 1;
            takes_value = 0;
        } else if (strcmp(arg, "--test") == 0) {
            opt->test_mode = 1;
            takes_value = 0;
        } else if (val == NULL) {
            fprintf(stderr, "ddns_client: %s needs a value\n", arg);
            return -1;
        } else if (strcmp(arg, "--server") == 0) {
            opt->server = val;
        } else if (strcmp(arg, "--mac") == 0) {
            opt->mac = val;
        } else if (strcmp(arg, "--label") == 0) {
            opt->label = val;
        } else if (strcmp(arg, "--state") == 0) {
            opt->state_path = val;
        } else if (strcmp(arg, "--cacert") == 0) {
            opt->cacert = val;
        } else if (strcmp(arg, "--bind") == 0) {
            opt->bind = val;
        } else if (strcmp(arg, "--user-agent") == 0) {
            opt->user_agent = val;
        } else if (strcmp(arg, "--key") == 0) {
            if (parse_key_hex(val, opt->key) != 0) {
                fputs("ddns_client: --key needs 64 hex digits\n", stderr);
                return -1;
            }
            opt->have_key = 1;
        } else if (strcmp(arg, "--key-file") == 0) {
            if (read_key_file(val, opt) != 0) {
                fprintf(stderr, "ddns_client: cannot read a key (ID HEX) from %s\n", val);
                return -1;
            }
            opt->have_key = 1;
        } else if (strcmp(arg, "--key-id") == 0) {
            if (parse_long(val, 0, 65535, &opt->key_id) != 0) {
                fputs("ddns_client: --key-id is 0..65535\n", stderr);
                return -1;
            }
        } else if (strcmp(arg, "--interval") == 0) {
            if (parse_long(val, 1, 86400, &opt->interval_secs) != 0) {
                fputs("ddns_client: --interval is 1..86400 seconds\n", stderr);
                return -1;
            }
        } else if (strcmp(arg, "--max-polls") == 0) {
            if (parse_long(val, 1, 1000000, &opt->max_polls) != 0) {
                fputs("ddns_client: --max-polls is 1..1000000\n", stderr);
                return -1;
            }
        } else {
            fprintf(stderr, "ddns_client: unknown option %s\n", arg);
            return -1;
        }
        i += takes_value;
    }
    if (opt->server == NULL || opt->mac == NULL || opt->state_path == NULL ||
        !opt->have_key || opt->key_id < 0) {
        fputs("ddns_client: --server, --mac, --state and a key with its id are required\n",
              stderr);
        return -1;
    }
    if (strncmp(opt->server, "http://", 7) != 0 && strncmp(opt->server, "https://", 8) != 0) {
        fputs("ddns_client: --server must be an http:// or https:// URL\n", stderr);
        return -1;
    }
    if (!opt->test_mode && opt->interval_secs < INTERVAL_MIN_SECS) {
        fprintf(stderr, "ddns_client: --interval is at least %d seconds\n", INTERVAL_MIN_SECS);
        return -1;
    }
    return 0;
}

/* The address in `text` in canonical form, or -1 if it is not an IPv4 or IPv6 address. */
static int canonical_addr(const char *text, char out[ADDR_MAX])
{
    unsigned char bin[16];
    if (inet_pton(AF_INET, text, bin) == 1)
        return inet_ntop(AF_INET, bin, out, ADDR_MAX) != NULL ? 0 : -1;
    if (inet_pton(AF_INET6, text, bin) == 1)
        return inet_ntop(AF_INET6, bin, out, ADDR_MAX) != NULL ? 0 : -1;
    return -1;
}

/*
 * Reads the acknowledged address. Returns 1 if the state file exists (the device registered;
 * `acked` is empty if the file holds no address), 0 if it does not.
 */
static int read_state(const char *path, char acked[ADDR_MAX])
{
    char line[ADDR_MAX];
    FILE *f = fopen(path, "r");
    acked[0] = '\0';
    if (f == NULL)
        return 0;
    if (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, " \t\r\n")] = '\0';
        if (canonical_addr(line, acked) != 0)
            acked[0] = '\0';
    }
    fclose(f);
    return 1;
}

/* Replaces the state file with `addr`: written to PATH.tmp, synced, renamed over PATH. */
static int write_state(const char *path, const char *addr)
{
    char tmp[PATH_LEN];
    FILE *f;
    int ok;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -1;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    ok = fprintf(f, "%s\n", addr) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

struct body {
    char text[REPLY_MAX];
    size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
    struct body *body = userdata;
    size_t bytes = size * n;
    size_t room = sizeof body->text - 1 - body->len;
    memcpy(body->text + body->len, data, bytes < room ? bytes : room);
    body->len += bytes < room ? bytes : room;
    return bytes;
}

/*
 * GETs `url` and leaves the reply, trimmed, in `reply`. Returns 0 on an HTTP 200, else -1 after
 * logging why.
 */
static int http_get(CURL *curl, const char *url, char reply[REPLY_MAX])
{
    struct body body;
    long status = 0;
    CURLcode rc;
    size_t start = 0;
    memset(&body, 0, sizeof body);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    rc = curl_easy_perform(curl);
    reply[0] = '\0';
    if (rc != CURLE_OK) {
        logf_line("network error: %s", curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        logf_line("HTTP status %ld", status);
        return -1;
    }
    while (body.len > 0 && strchr(" \t\r\n", body.text[body.len - 1]) != NULL)
        body.len--;
    body.text[body.len] = '\0';
    while (body.text[start] != '\0' && strchr(" \t\r\n", body.text[start]) != NULL)
        start++;
    memcpy(reply, body.text + start, body.len - start + 1);
    return 0;
}

/* Asks the server for the WAN address. */
static enum outcome detect(CURL *curl, const struct options *opt, char wan[ADDR_MAX])
{
    char url[URL_MAX], reply[REPLY_MAX];
    snprintf(url, sizeof url, "%s/ipdetect.aspx", opt->server);
    if (http_get(curl, url, reply) != 0)
        return RETRY;
    if (strcmp(reply, "911") == 0)
        return FLOOD;
    if (canonical_addr(reply, wan) != 0) {
        logf_line("ipdetect answered %.40s, not an address", reply);
        return RETRY;
    }
    return ACKED;
}

/* Sends add.aspx (when `add`) or update.aspx with `wan`, sealed with a fresh token. */
static enum outcome send_update(CURL *curl, const struct options *opt, int add, const char *wan,
                                const char *why)
{
    char token[DDNS_TOKEN_BUF_LEN], url[URL_MAX], reply[REPLY_MAX];
    char *ip, *label = NULL;
    int n = ddns_token_seal(opt->key, (uint16_t)opt->key_id, opt->mac, (uint64_t)time(NULL),
                            token, sizeof token);
    if (n < 0) {
        logf_line("cannot seal the MAC (error %d)", n);
        return REFUSED;
    }
    ip = curl_easy_escape(curl, wan, 0);
    if (add)
        label = curl_easy_escape(curl, opt->label, 0);
    if (ip == NULL || (add && label == NULL)) {
        curl_free(ip);
        curl_free(label);
        return RETRY;
    }
    if (add)
        n = snprintf(url, sizeof url, "%s/add.aspx?mac=%s&dm=%s&myip=%s", opt->server, token,
                     label, ip);
    else
        n = snprintf(url, sizeof url, "%s/update.aspx?mac=%s&myip=%s", opt->server, token, ip);
    curl_free(ip);
    curl_free(label);
    memset(token, 0, sizeof token);
    if (n < 0 || (size_t)n >= sizeof url) {
        logf_line("the request URL is too long");
        return REFUSED;
    }
    if (http_get(curl, url, reply) != 0)
        return RETRY;
    logf_line("%s %s%s%s (%s) -> %s", add ? "add" : "update", add ? opt->label : "",
              add ? " " : "", wan, why, reply);
    if (strcmp(reply, "08") == 0 || strcmp(reply, "09") == 0 || strncmp(reply, "10|", 3) == 0)
        return ACKED;
    if (strcmp(reply, "911") == 0)
        return FLOOD;
    if (strcmp(reply, "12") == 0)
        return RETRY;
    if (strcmp(reply, "13") == 0)
        return NOT_FOUND;
    return REFUSED; /* 01 invalid label, 02 invalid MAC, 04 invalid IP, 07 name taken */
}

/* Exponential back-off: after n (1, 2, ...) floods or refusals in a row, a random time in
 * [d/2, d] for d = interval * 2^n, at most BACKOFF_MAX_SECS, so a fleet flooded at once
 * spreads out. */
static long backoff_ms(long interval_ms, long unit_ms, unsigned n)
{
    long cap = BACKOFF_MAX_SECS * unit_ms;
    long d = interval_ms;
    unsigned i;
    if (cap < interval_ms)
        cap = interval_ms;
    for (i = 0; i < n && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    return d / 2 + (long)(rand() % (d / 2 + 1));
}

static void sleep_ms(long ms)
{
    struct timespec left;
    left.tv_sec = ms / 1000;
    left.tv_nsec = (ms % 1000) * 1000000L;
    while (!stopping && nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

static CURL *new_handle(const struct options *opt)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return NULL;
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, opt->user_agent);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    /* Certificate checks are libcurl's default; stated here so nobody turns them off. */
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (opt->cacert != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, opt->cacert);
    if (opt->bind != NULL)
        curl_easy_setopt(curl, CURLOPT_INTERFACE, opt->bind);
    return curl;
}

int main(int argc, char **argv)
{
    struct options opt;
    struct sigaction sa;
    char acked[ADDR_MAX], wan[ADDR_MAX];
    CURL *curl;
    long unit_ms, interval_ms, polls = 0;
    unsigned refusals = 0;
    int registered, boot = 1, in_sync = 0;

    switch (parse_options(argc, argv, &opt)) {
    case 0:
        break;
    case 1:
        usage(stdout);
        return 0;
    default:
        usage(stderr);
        return 2;
    }
    unit_ms = opt.test_mode ? 1 : 1000;
    interval_ms = opt.interval_secs * unit_ms;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (curl = new_handle(&opt)) == NULL) {
        logf_line("cannot start libcurl");
        return 1;
    }
    registered = read_state(opt.state_path, acked);
    logf_line("start: %s, acknowledged address %s, poll every %ld %s", opt.server,
              acked[0] != '\0' ? acked : "none", opt.interval_secs, opt.test_mode ? "ms" : "s");

    while (!stopping && (opt.max_polls == 0 || polls < opt.max_polls)) {
        long wait_ms = interval_ms;
        enum outcome result = detect(curl, &opt, wan);
        polls++;
        in_sync = 0;
        if (result == ACKED && !boot && strcmp(wan, acked) == 0) {
            logf_line("poll: %s unchanged", wan);
            in_sync = 1;
            refusals = 0;
        } else if (result == ACKED) {
            int add = !registered && opt.label != NULL;
            result = send_update(curl, &opt, add, wan, boot ? "boot" : "changed");
            if (result == ACKED) {
                if (write_state(opt.state_path, wan) != 0)
                    logf_line("cannot write %s: the next start will update again", opt.state_path);
                else
                    logf_line("stored %s", wan);
                strcpy(acked, wan);
                registered = 1;
                boot = 0;
                in_sync = 1;
                refusals = 0;
            }
        }
        if (result == FLOOD || result == REFUSED) {
            /* A misconfigured fleet (wrong key, clock, label) must not poll the server hard
             * either: refusals back off like floods. */
            wait_ms = backoff_ms(interval_ms, unit_ms, ++refusals);
            logf_line("%s: backing off %ld %s",
                      result == FLOOD ? "flood (911)" : "refused (check the key, MAC, label)",
                      opt.test_mode ? wait_ms : wait_ms / 1000, opt.test_mode ? "ms" : "s");
        } else if (result == RETRY) {
            logf_line("trying again at the next poll");
        } else if (result == NOT_FOUND) {
            registered = 0;
            logf_line("no record: %s", opt.label != NULL ? "registering again at the next poll"
                                                         : "no --label to register with");
        }
        if (opt.max_polls != 0 && polls >= opt.max_polls)
            break;
        sleep_ms(wait_ms);
    }
    logf_line("stop after %ld polls, %s", polls, in_sync ? "in sync" : "not in sync");
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return in_sync ? 0 : 1;
}
