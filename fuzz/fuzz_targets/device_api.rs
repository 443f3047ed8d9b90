//! afl-fuzz harness of `ddns_fuzz::device_api::check` (see fuzz/README.md).

fn main() {
    afl::fuzz!(|data: &[u8]| ddns_fuzz::device_api::check(data));
}
