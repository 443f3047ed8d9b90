//! afl-fuzz harness of `ddns_fuzz::dyndns2::check` (see fuzz/README.md).

fn main() {
    afl::fuzz!(|data: &[u8]| ddns_fuzz::dyndns2::check(data));
}
