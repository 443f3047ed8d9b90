//! afl-fuzz harness of `ddns_fuzz::acme::check` (see fuzz/README.md).

fn main() {
    afl::fuzz!(|data: &[u8]| ddns_fuzz::acme::check(data));
}
