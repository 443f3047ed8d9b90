//! afl-fuzz harness of `ddns_fuzz::quic_wire::check` (see fuzz/README.md).

fn main() {
    afl::fuzz!(|data: &[u8]| ddns_fuzz::quic_wire::check(data));
}
