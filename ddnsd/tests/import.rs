//! `ddnsd import`: a zone file's hosts become events, served by DNS after the next start.

mod common;

use std::process::Command;

use common::*;

const ZONE: &str = "\
$ORIGIN dyn.example.
$TTL 300
@       IN SOA ns1 hostmaster ( 1 3600 600 1209600 60 )
        IN NS  ns1
        IN A   192.0.2.250      ; apex address: not served, counted
ns1     IN A   192.0.2.53
cam1    IN A   192.0.2.1
        IN AAAA 2001:db8::1
www.sub IN A   192.0.2.2
mail    IN MX  10 ns1
";

fn import(data: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .arg("import")
        .arg(file)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("runs")
}

#[test]
fn imported_hosts_are_served_and_cannot_be_claimed_by_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, file) = (dir.path().join("data"), dir.path().join("dyn.example.zone"));
    std::fs::write(&file, ZONE).expect("written");
    let out = import(&data, &file);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("imported 4 records (3 A, 1 AAAA)"), "{said}");
    assert!(
        said.contains("apex A/AAAA 1") && said.contains("MX 1") && said.contains("SOA 1"),
        "{said}"
    );

    let server = Server::start(&data, None);
    assert_eq!(server.dig_short(&["cam1.dyn.example", "A"]), ["192.0.2.1"]);
    assert_eq!(
        server.dig_short(&["cam1.dyn.example", "AAAA"]),
        ["2001:db8::1"]
    );
    assert_eq!(
        server.dig_short(&["www.sub.dyn.example", "A"]),
        ["192.0.2.2"]
    );
    let between = server.dig(&["sub.dyn.example", "A"]);
    assert_eq!(
        status(&between),
        "NOERROR",
        "an empty non-terminal exists: {between}"
    );
    assert!(between.contains("ANSWER: 0"), "{between}");
    assert_eq!(
        status(&server.dig(&["nope.sub.dyn.example", "A"])),
        "NXDOMAIN"
    );
    let mac = server.token("AA", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=cam1&myip=192.0.2.9")),
        "07"
    );
    assert_eq!(server.dig_short(&["cam1.dyn.example", "A"]), ["192.0.2.1"]);

    // The log is locked while the server runs: import says so and writes nothing.
    let out = import(&data, &file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the server running?"));
}

#[test]
fn a_bad_line_imports_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, file) = (dir.path().join("data"), dir.path().join("bad.zone"));
    for (text, error) in [
        (
            "$ORIGIN dyn.example.\n$TTL 60\nok A 192.0.2.1\nbad A 192.0.2.300\n",
            "line 4",
        ),
        (
            "$ORIGIN other.example.\n$TTL 60\nx A 192.0.2.1\n",
            "outside every configured zone",
        ),
    ] {
        std::fs::write(&file, text).expect("written");
        let out = import(&data, &file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(error),
            "{text}: {stderr}"
        );
    }
    let server = Server::start(&data, None);
    assert_eq!(
        status(&server.dig(&["ok.dyn.example", "A"])),
        "NXDOMAIN",
        "nothing was appended"
    );
}
