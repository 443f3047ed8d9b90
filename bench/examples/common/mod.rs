//! What the examples that measure the real `ddnsd` share: the release binary started as a child
//! process on loopback (a temp data dir, every listener on port 0, its addresses from its ready
//! line), a throwaway PKI made by `openssl`, the server's CPU and RSS from `/proc`, and the
//! knobs and load average every report prints.
//!
//! Each example includes this with `mod common;` (a directory without `main.rs`, so cargo does
//! not take it for an example of its own) and uses its own subset of it.

#![allow(dead_code, reason = "each example uses its own subset")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Kernel clock ticks per second (`getconf CLK_TCK`), what `/proc/PID/stat` counts CPU in.
const TICKS_PER_SEC: f64 = 100.0;

/// The environment variable `name` as a number, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The 1, 5 and 15 minute load averages, for the report's first line.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The release `ddnsd`: `DDNSD_BIN`, or `release/ddnsd` under `CARGO_TARGET_DIR` (`target`).
pub fn ddnsd_bin() -> PathBuf {
    let bin = std::env::var("DDNSD_BIN").map_or_else(
        |_| {
            let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
            PathBuf::from(target).join("release/ddnsd")
        },
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "{} not found: cargo build --release -p ddnsd",
        bin.display()
    );
    bin
}

/// The server certificate's key.
#[derive(Clone, Copy, PartialEq)]
pub enum KeyKind {
    /// ECDSA P-256.
    Ec,
    /// RSA-2048 (a full TLS handshake signs with it).
    Rsa,
}

impl KeyKind {
    /// As the reports print it.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Ec => "ECDSA P-256",
            KeyKind::Rsa => "RSA-2048",
        }
    }
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1 that it signs.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Made by `openssl` in `dir`; the CA's key is always ECDSA P-256, the server's is `kind`.
    pub fn new(dir: &Path, kind: KeyKind) -> Pki {
        let openssl = |args: &str| {
            let out = Command::new("openssl")
                .args(args.split_whitespace())
                .current_dir(dir)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        let server_key = match kind {
            KeyKind::Ec => ec,
            KeyKind::Rsa => "-newkey rsa:2048 -nodes",
        };
        openssl(&format!(
            "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-CA"
        ));
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("written");
        openssl(&format!(
            "req {server_key} -keyout server.key -out server.csr -subj /CN=localhost"
        ));
        openssl(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 1 \
             -extfile server.ext -out server.pem",
        );
        Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }

    /// The config's `[tls]` table, serving this certificate.
    pub fn tls_table(&self) -> String {
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            self.cert, self.key
        )
    }
}

/// A running `ddnsd serve`, killed on drop.
pub struct Server {
    child: Child,
    /// What follows `ddnsd ready:` in its log: `name=address` fields.
    ready: String,
    /// The binary it runs.
    pub bin: PathBuf,
    /// Its `--config` file.
    pub config: PathBuf,
    /// Its `--data-dir`.
    pub data_dir: PathBuf,
}

impl Server {
    /// `bin` serving with `config` (written to `dir/ddnsd.toml`) and its data in `dir/data`,
    /// HTTP, DNS and the portal on loopback port 0; returns once it has logged that it is ready.
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Server {
        let config_path = dir.join("ddnsd.toml");
        std::fs::write(&config_path, config).expect("config written");
        let data_dir = dir.join("data");
        let mut child = Command::new(bin)
            .args(["serve", "--http-listen", "127.0.0.1:0"])
            .args([
                "--dns-listen",
                "127.0.0.1:0",
                "--portal-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .env_remove("DDNSD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ddnsd starts");
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut lines = stderr.lines();
        let ready = loop {
            let line = lines
                .next()
                .expect("ddnsd said it was ready")
                .expect("stderr");
            if let Some(rest) = line.split("ddnsd ready:").nth(1) {
                break rest.to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            ready,
            bin: bin.to_owned(),
            config: config_path,
            data_dir,
        }
    }

    /// The address its ready line gives as `name=` (`http`, `https`, `dns`, `doq`, `quic`).
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.ready
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in the ready line: {}", self.ready))
    }

    /// utime + stime of the server so far, in seconds.
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/PID/stat");
        // Fields after the command name (which may hold spaces, in parentheses).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat format")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        ticks as f64 / TICKS_PER_SEC
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
