//! Disk full (issue 12, "Faults"): the log's file system fills up during a load. Appends then
//! fail with each protocol's server error (`12`, `ERR 0x80008005`, `dnserr`), DNS keeps
//! answering every acknowledged update, and once space is freed the server appends again by
//! itself, without a restart; after a `kill -9` and a restart nothing acknowledged is missing and
//! `ddnsd verify` passes.
//!
//! The log lives on a small tmpfs mounted over `DATA_DIR/log` (the test runs as root, as CI and
//! the fresh-machine check do), with a ballast file that leaves a few KiB free; deleting the
//! ballast is the operator freeing space.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const DEVICES: usize = 8;
/// The most updates sent to fill the file system (the log preallocates 1 MiB at a time, and an
/// update takes ~150 bytes of it).
const MOST_UPDATES: usize = 40_000;

/// A tmpfs mounted at a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with a ballast file up to `leave` bytes short of full.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).expect("ballast");
    let chunk = vec![0xa5u8; 16 * 1024];
    let mut written = 0u64;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    drop(file);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("ballast");
    file.set_len(written.saturating_sub(leave)).expect("shrunk");
    path
}

#[test]
fn a_full_log_file_system_refuses_appends_loses_nothing_and_recovers_when_freed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), ROOMY_QUOTAS);
    let data = dir.path().join("data");
    let log_fs = Tmpfs::mount(&data.join("log"), "2m");
    let server = Server::start(&data, Some(&config));
    let admin = |args: &[&str], stdin: &str| {
        let out = admin_command(&data, &config, args, stdin);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    admin(
        &["user", "add", "brian01", "--email", "b@x.example"],
        "a long pass phrase\n",
    );
    admin(
        &["host", "add", "dvr.brian.dyn.example", "--user", "brian01"],
        "dvr-pw\n",
    );
    let dvr = |ip: &str| {
        server.reply(&format!(
            "/dvr/update?host=dvr.brian.dyn.example&pw=dvr-pw&ip={ip}"
        ))
    };
    let dyndns2 = |ip: &str| {
        let path = format!(
            "/nic/update?hostname=dvr.brian.dyn.example&myip={ip}&user=brian01&pass={}",
            url_encode("a long pass phrase")
        );
        http_get(server.http, &path, &[("user-agent", "test/1")]).1
    };
    assert_eq!(dvr("192.0.2.200"), "ACT");
    let tokens: Vec<String> = (0..DEVICES)
        .map(|d| server.token(&format!("00:00:00:00:02:{d:02X}"), &[]))
        .collect();
    let mut acked: Vec<String> = Vec::new();
    for (d, token) in tokens.iter().enumerate() {
        assert_eq!(
            server.reply(&format!("/add.aspx?mac={token}&dm=full{d}&myip=192.0.2.1")),
            format!("10|full{d}.dyn.example")
        );
        acked.push("192.0.2.1".into());
    }
    let update =
        |d: usize, ip: &str| server.reply(&format!("/update.aspx?mac={}&myip={ip}", tokens[d]));

    // Fill the file system, then update until the log runs out of space.
    let ballast = fill(&data.join("log"), 8 * 1024);
    let ip_of = |n: usize| format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    let mut n = 0;
    let refused = loop {
        assert!(n < MOST_UPDATES, "the log's file system never filled");
        let d = n % DEVICES;
        let ip = ip_of(n + 1);
        n += 1;
        match update(d, &ip).as_str() {
            "09" => acked[d] = ip,
            other => break other.to_owned(),
        }
    };
    assert_eq!(refused, "12", "a server error, after {n} updates");
    // Every protocol says so while the file system is full, and nothing changes.
    for i in 0..3 {
        assert_eq!(update(i, &ip_of(1 << 20 | i)), "12");
    }
    assert_eq!(dvr("192.0.2.201"), "ERR 0x80008005");
    assert_eq!(dyndns2("192.0.2.202"), "dnserr\n");
    for (d, ip) in acked.iter().enumerate() {
        assert_eq!(
            server.dig_short(&[&format!("full{d}.dyn.example"), "A"]),
            std::slice::from_ref(ip)
        );
    }
    assert_eq!(
        server.dig_short(&["dvr.brian.dyn.example", "A"]),
        ["192.0.2.200"]
    );

    // Space is freed: the server appends again by itself.
    std::fs::remove_file(&ballast).expect("ballast removed");
    let ip = ip_of(2 << 20);
    assert_eq!(update(0, &ip), "09", "appends resume once space is freed");
    acked[0] = ip;
    assert_eq!(dvr("192.0.2.203"), "ACT");
    assert_eq!(dyndns2("192.0.2.204"), "good 192.0.2.204\n");

    // Nothing acknowledged was lost, and the refused writes left nothing behind.
    server.kill9();
    let (ok, said) = verify(&data, Some(&config));
    assert!(ok, "{said}");
    let server = Server::start(&data, Some(&config));
    for (d, ip) in acked.iter().enumerate() {
        assert_eq!(
            server.dig_short(&[&format!("full{d}.dyn.example"), "A"]),
            std::slice::from_ref(ip)
        );
    }
    assert_eq!(
        server.dig_short(&["dvr.brian.dyn.example", "A"]),
        ["192.0.2.204"]
    );
    drop(server);
    drop(log_fs);
}
