//! afl-fuzz harness of `ddns_fuzz::dns::check` (see fuzz/README.md).

fn main() {
    afl::fuzz!(|data: &[u8]| ddns_fuzz::dns::check(data));
}
