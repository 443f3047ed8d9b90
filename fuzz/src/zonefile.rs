//! The zone-file reader ([`ZoneFileReader`], behind `ddnsd import`) on any text: it never panics,
//! it ends (each record costs at least one line, so a file of N lines gives at most N records
//! before its end or an error), and the records it reads, written back as a plain zone file
//! (`NAME. TTL IN A|AAAA ADDR`), read back the same.
//!
//! Input: the file's bytes, read with `dyn.example` as the initial `$ORIGIN`.

use ddns_core::{AddressRecord, Fqdn, ZoneFileReader};

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let origin = Fqdn::parse("dyn.example").expect("a valid origin");
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    let records = read(data, Some(origin), lines);
    let mut text = String::new();
    for record in &records {
        let kind = if record.addr.is_ipv4() { "A" } else { "AAAA" };
        text.push_str(&format!(
            "{}. {} IN {kind} {}\n",
            record.name, record.ttl_secs, record.addr
        ));
    }
    let again = read(text.as_bytes(), None, records.len() + 1);
    assert_eq!(again, records, "written back as\n{text}");
}

/// Every record before the end or the first error; panics if the reader has not ended after
/// `lines` records.
fn read(data: &[u8], origin: Option<Fqdn>, lines: usize) -> Vec<AddressRecord> {
    let mut reader = ZoneFileReader::new(data, origin);
    let mut records = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(record)) => records.push(record),
            Ok(None) | Err(_) => return records,
        }
        assert!(
            records.len() <= lines,
            "{} records from {lines} lines",
            records.len()
        );
    }
}
