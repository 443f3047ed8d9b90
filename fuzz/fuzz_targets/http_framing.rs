//! afl-fuzz harness of `ddns_fuzz::http_framing::check` (see fuzz/README.md).

fn main() {
    afl::fuzz!(|data: &[u8]| ddns_fuzz::http_framing::check(data));
}
