//! Runs the real `ddnsd` binary on free loopback ports, and talks to it with raw HTTP and the
//! real `dig`. A server is SIGKILLed when dropped.
#![allow(dead_code)]

pub mod updates;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ddnsd");

/// A config whose quotas leave room for tests that send many requests from 127.0.0.1.
pub const ROOMY_QUOTAS: &str = "
[ingest.flood]
device_updates_per_minute = 1000000
device_burst = 100000
source_requests_per_minute = 1000000
source_burst = 100000
";

pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub dns: SocketAddr,
    /// The web portal (absent on a DNS-only node).
    pub portal: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
    /// Every line the server wrote to stderr so far, collected by a thread.
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Server {
    /// Starts `ddnsd serve` on `data_dir` with an optional config file, and waits for its
    /// ready line (at most 60 s).
    pub fn start(data_dir: &Path, config: Option<&Path>) -> Server {
        Server::start_with_env(data_dir, config, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(data_dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Server {
        Server::start_wrapped(&[], data_dir, config, env)
    }

    /// [`Server::start_with_env`] as the argument of a wrapper command (`prlimit --nofile=…`).
    pub fn start_wrapped(
        wrapper: &[&str],
        data_dir: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command.envs(env.iter().copied());
        command
            .args([
                "serve",
                "--http-listen",
                "127.0.0.1:0",
                "--dns-listen",
                "127.0.0.1:0",
                "--portal-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .env_remove("DDNSD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command.spawn().expect("ddnsd starts");
        let stderr = child.stderr.take().expect("piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut log = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("ddnsd did not get ready; it said:\n{}", log.join("\n"));
                }
            };
            log.push(line.clone());
            if let Some(rest) = line.split("ddnsd ready: ").nth(1) {
                let field = |name: &str| -> SocketAddr {
                    let start =
                        rest.find(&format!("{name}=")).expect("field present") + name.len() + 1;
                    let end = rest[start..].find(' ').map_or(rest.len(), |e| start + e);
                    rest[start..end].parse().expect("an address")
                };
                return Server {
                    child,
                    http: field("http"),
                    dns: field("dns"),
                    portal: rest.contains("portal=").then(|| field("portal")),
                    data_dir: data_dir.to_owned(),
                    config: config.map(Path::to_owned),
                    lines,
                    log,
                };
            }
        }
    }

    /// Collects what the server wrote since the last call.
    pub fn drain_log(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// `GET path` over a fresh connection: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path, &[])
    }

    /// The body of `GET path`, which must be a 200.
    pub fn reply(&self, path: &str) -> String {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path:.100}: {body}");
        body
    }

    /// A token for `mac` from `ddnsd cipher`, URL-encoded.
    pub fn token(&self, mac: &str, extra: &[&str]) -> String {
        cipher(&self.data_dir, self.config.as_deref(), mac, extra)
    }

    /// `dig @server -p port ARGS +short`-style answers: the answer section's data, one per line.
    pub fn dig_short(&self, args: &[&str]) -> Vec<String> {
        let out = dig(self.dns, &[args, &["+short"]].concat());
        out.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    pub fn dig(&self, args: &[&str]) -> String {
        dig(self.dns, args)
    }

    /// The address a field of the ready line names (`https`, `portal`, …).
    pub fn ready_field(&self, name: &str) -> SocketAddr {
        let line = self
            .log
            .iter()
            .find(|l| l.contains("ddnsd ready:"))
            .expect("a ready line");
        let start = line.find(&format!(" {name}=")).expect("the field") + name.len() + 2;
        let end = line[start..].find(' ').map_or(line.len(), |e| start + e);
        line[start..end].parse().expect("an address")
    }

    /// The `/metrics` address the ready line names (the config set `metrics_listen`).
    pub fn metrics_addr(&self) -> SocketAddr {
        let ready = self
            .log
            .iter()
            .find(|l| l.contains("ddnsd ready"))
            .expect("a ready line");
        ready
            .split("metrics=Some(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("metrics address in {ready}"))
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn cipher(data_dir: &Path, config: Option<&Path>, mac: &str, extra: &[&str]) -> String {
    let mut command = Command::new(BIN);
    command
        .args(["cipher", "--mac", mac])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let out = command.output().expect("ddnsd cipher runs");
    assert!(
        out.status.success(),
        "cipher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    url_encode(String::from_utf8(out.stdout).expect("utf-8").trim())
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal HTTP/1.1 GET, so the tests exercise the server's real socket and parser.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http_request(addr, "GET", path, headers, "")
}

/// One request on its own connection: the status and the body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The sum of every `/metrics` series at `metrics` whose name and labels start with `prefix`.
pub fn metric(metrics: SocketAddr, prefix: &str) -> u64 {
    let (status, text) = http_get(metrics, "/metrics", &[]);
    assert_eq!(status, 200);
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(_, value)| value.parse::<f64>().expect("a number") as u64)
        .sum()
}

/// Runs the real `dig` against `server`.
pub fn dig(server: SocketAddr, args: &[&str]) -> String {
    try_dig(server, args).unwrap_or_else(|why| panic!("dig {args:?}: {why}"))
}

/// Runs the real `dig` against `server`: its output, or what it said when it got no answer
/// (a timeout, a refused port).
pub fn try_dig(server: SocketAddr, args: &[&str]) -> Result<String, String> {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+norec",
            "+time=5",
            "+tries=2",
        ])
        .args(args)
        .output()
        .expect("dig runs (apt-get install bind9-dnsutils)");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    if out.status.success() {
        Ok(stdout)
    } else {
        // dig says why on stdout (";; connection timed out; no servers could be reached").
        Err(format!(
            "{} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The status dig reports (`NOERROR`, `NXDOMAIN`, …).
pub fn status(dig_output: &str) -> &str {
    dig_output
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no status in {dig_output}"))
}

/// Writes a config file in `dir`.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("ddnsd.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// Runs an operator's command (`user add …`) on the server of `data_dir` (through its admin
/// socket when it runs), with `stdin` as its input.
pub fn admin_command(
    data_dir: &Path,
    config: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env_remove("DDNSD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ddnsd runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("ddnsd finishes")
}

/// `openssl req` options for a new ECDSA P-256 key, unencrypted.
const EC_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A test CA made by Debian's `openssl` in a directory, and server certificates for `localhost`
/// and 127.0.0.1 that it signs.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_owned(),
        };
        pki.openssl(&format!(
            "req -x509 {EC_KEY} -keyout ca.key -out ca.pem -days 2 -subj /CN=ddnsd-test-CA"
        ));
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("written");
        pki
    }

    /// `openssl ARGS` in the PKI's directory (no argument holds a space).
    fn openssl(&self, args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new key and a certificate with `serial`: `name.pem` and `name.key`.
    pub fn issue(&self, name: &str, serial: u32) -> (PathBuf, PathBuf) {
        self.openssl(&format!(
            "req {EC_KEY} -keyout {name}.key -out {name}.csr -subj /CN=localhost"
        ));
        self.openssl(&format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -set_serial {serial} -days 1 \
             -extfile server.ext -out {name}.pem"
        ));
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// The CA's certificate, for clients to trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// One record of an embedded-log segment, as log/README.md lays it out.
pub struct LogFrame {
    /// Where its frame starts and ends in the segment.
    pub start: u64,
    pub end: u64,
    /// Its log offset.
    pub offset: u64,
    /// The event's bytes.
    pub payload: Vec<u8>,
}

/// The whole records of a segment: an 8-byte header, then `u32 LE body length | u32 crc |
/// body` with `body = u64 offset | u32 key length | key | payload`, zero-filled past the end.
pub fn log_frames(segment: &[u8]) -> Vec<LogFrame> {
    let mut frames = Vec::new();
    let mut pos = 8;
    while pos + 8 <= segment.len() {
        let len = u32::from_le_bytes(segment[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len < 12 || pos + 8 + len > segment.len() {
            break;
        }
        let body = &segment[pos + 8..pos + 8 + len];
        let offset = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        let key_len = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize;
        frames.push(LogFrame {
            start: pos as u64,
            end: (pos + 8 + len) as u64,
            offset,
            payload: body[12 + key_len..].to_vec(),
        });
        pos += 8 + len;
    }
    frames
}

/// The newest segment of the embedded log in `log_dir`.
pub fn newest_segment(log_dir: &Path) -> PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(log_dir)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

/// `ddnsd verify` on a stopped server's data dir: its exit status and what it printed.
pub fn verify(data_dir: &Path, config: Option<&Path>) -> (bool, String) {
    let mut command = Command::new(BIN);
    command.arg("verify").arg("--data-dir").arg(data_dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let out = command
        .env_remove("DDNSD_CONFIG")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("ddnsd verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
