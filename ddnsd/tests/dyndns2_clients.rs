//! dyndns2 with the clients of the field, as Debian ships them: ddclient 3.10 and inadyn 2.10
//! against the real binary. Each client runs once, in the foreground, with its own config,
//! cache and pid file in a tempdir, against the device API on 127.0.0.1, over plain HTTP and over
//! HTTPS (a test CA made by `openssl`); the real `dig` checks what DNS answers, and the server's
//! metrics show what reached the log.
//!
//! The account `brian01` owns `cam1` and `cam2` (updated with the account's password, in one
//! request where the client groups them) and `nas` (updated with its own host password).
//!
//! Needs `ddclient` (with `libio-socket-ssl-perl` for HTTPS), `inadyn` and `openssl`
//! (`scripts/setup.sh --tests`): without them the tests fail, they never skip.

mod common;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ACCOUNT: &str = "brian01";
const ACCOUNT_PASSWORD: &str = "a long pass phrase";
/// Updated with the account's credentials.
const CAMS: [&str; 2] = ["cam1.brian.dyn.example", "cam2.brian.dyn.example"];
/// Updated with its own host password.
const NAS: &str = "nas.brian.dyn.example";
const NAS_PASSWORD: &str = "pw-nas";
const HOSTS: [&str; 3] = [CAMS[0], CAMS[1], NAS];
/// The longest one client run may take: every run here is one or two requests on loopback.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn ddclient_updates_ipv4_then_ipv6_and_a_repeat_is_nochg() {
    let f = Fixture::start();

    // IPv4 as 3.10 documents it: `usev4=ipv4` (the old `use=` off).
    let v4 = Ddclient::new(
        &f,
        "ddclient4",
        f.http(),
        "use=no\nusev4=ipv4, ipv4=192.0.2.10",
        RIGHT,
    );
    let run = v4.updates_to("192.0.2.10");
    assert!(
        run.lines_starting("SENDING:  GET /nic/update?")
            .iter()
            .any(|r| r.contains(
                "hostname=cam1.brian.dyn.example,cam2.brian.dyn.example&myip=192.0.2.10 "
            )),
        "the account's hosts in one request:\n{}",
        run.log
    );
    assert_eq!(
        run.lines_starting("RECEIVE:  good 192.0.2.10").len(),
        3,
        "a line per host:\n{}",
        run.log
    );
    v4.repeat_is_nochg();

    // IPv6: ddclient 3.10's dyndns2 sends only `wantip`, which `usev6` never sets (it would
    // send an empty `myip`), so the address comes through the old `use=ip`. A cache of its own:
    // with the IPv4 run's, ddclient would hold the change back for `min-interval` (30 s).
    let v6 = Ddclient::new(&f, "ddclient6", f.http(), "use=ip, ip=2001:db8::10", RIGHT);
    v6.updates_to("2001:db8::10");
    f.untouched("A", "192.0.2.10");
    v6.repeat_is_nochg();
}

#[test]
fn inadyn_updates_ipv4_then_ipv6_and_a_repeat_is_nochg() {
    let f = Fixture::start();
    let cache = inadyn_cache(f.dir.path());

    let v4 = Inadyn::new(&f, "inadyn4", f.http(), "192.0.2.20", RIGHT, &cache);
    v4.updates_to("192.0.2.20");
    v4.repeat_is_nochg("192.0.2.20");

    // IPv6: inadyn 2.10 has no `ipv6@` providers (2.11 brought them); a custom provider sends
    // whatever address its checkip found, an IPv6 one once `allow-ipv6` lets it. The same cache:
    // the address changed, so inadyn updates.
    let v6 = Inadyn::new(&f, "inadyn6", f.http(), "2001:db8::20", RIGHT, &cache);
    v6.updates_to("2001:db8::20");
    f.untouched("A", "192.0.2.20");
    v6.repeat_is_nochg("2001:db8::20");
}

#[test]
fn both_clients_stop_at_a_wrong_password() {
    let f = Fixture::start();

    // ddclient: one request per group, a failure per host, exit 1. `use=ip` keeps the
    // bookkeeping of 3.10's dyndns2 (its `usev4` path skips the same way).
    let ddclient = Ddclient::new(&f, "ddclient", f.http(), "use=ip, ip=192.0.2.30", WRONG);
    let badauth_before = f.replies("badauth");
    let run = ddclient.run(&[]);
    assert_eq!(run.code, Some(1), "{}", run.log);
    for host in HOSTS {
        run.expect(&format!(
            "FAILED:   updating {host}: badauth: Bad authorization (username or password)"
        ));
    }
    assert_eq!(run.lines_starting("SENDING:  GET /nic/update?").len(), 2);
    assert_eq!(f.replies("badauth"), badauth_before + 2, "{}", run.log);
    // Run again (as cron or the ip-up hook would): ddclient's cache holds it back, nothing sent.
    let run = ddclient.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert!(run.lines_starting("SENDING:").is_empty(), "{}", run.log);
    assert_eq!(f.replies("badauth"), badauth_before + 2);

    // inadyn: a custom provider's section stops at its first failed host, and then inadyn
    // exits instead of waiting to retry.
    let cache = inadyn_cache(f.dir.path());
    let inadyn = Inadyn::new(&f, "inadyn", f.http(), "192.0.2.30", WRONG, &cache);
    let run = inadyn.run(&[]);
    assert_ne!(run.code, Some(0), "{}", run.log);
    assert_eq!(
        run.lines_containing("[200 OK] badauth").len(),
        2,
        "{}",
        run.log
    );
    run.expect("Error response from DDNS server, exiting!");
    assert_eq!(f.replies("badauth"), badauth_before + 4, "{}", run.log);

    for host in HOSTS {
        assert!(f.server.dig_short(&[host, "A"]).is_empty(), "{host}");
    }
}

#[test]
fn ddclient_updates_over_https_and_stops_at_an_untrusted_certificate() {
    let f = Fixture::start_https();

    // `ssl=yes` with `ssl_ca_file`: IO::Socket::SSL checks the chain and the name (the server's
    // IP address, in the certificate's subjectAltName).
    let trusting = Ddclient::new(
        &f,
        "ddclient",
        f.https(true),
        "use=no\nusev4=ipv4, ipv4=192.0.2.40",
        RIGHT,
    );
    let run = trusting.updates_to("192.0.2.40");
    assert_eq!(
        run.lines_starting("CONNECTED:  using SSL").len(),
        2,
        "{}",
        run.log
    );

    // Without the CA (only the system's store): the handshake fails before a request is sent.
    let untrusting = Ddclient::new(
        &f,
        "ddclient-untrusting",
        f.https(false),
        "use=no\nusev4=ipv4, ipv4=192.0.2.41",
        RIGHT,
    );
    let answered = f.nic_updates();
    let run = untrusting.run(&[]);
    assert_eq!(run.code, Some(1), "{}", run.log);
    assert_eq!(
        run.lines_containing("certificate verify failed").len(),
        2,
        "{}",
        run.log
    );
    let failed = run.lines_starting("FAILED:   updating ");
    assert_eq!(failed.len(), 2, "{}", run.log);
    let refused = format!(": Could not connect to {}.", f.server.ready_field("https"));
    assert!(failed.iter().all(|l| l.ends_with(&refused)), "{}", run.log);
    assert!(run.lines_starting("SENDING:").is_empty(), "{}", run.log);
    f.nothing_changed(answered, "192.0.2.40");
}

#[test]
fn inadyn_updates_over_https_and_stops_at_an_untrusted_certificate() {
    let f = Fixture::start_https();

    // `ssl = true` with `ca-trust-file`: GnuTLS checks the chain and the name.
    let cache = inadyn_cache(f.dir.path());
    let trusting = Inadyn::new(&f, "inadyn", f.https(true), "192.0.2.50", RIGHT, &cache);
    let run = trusting.updates_to("192.0.2.50");
    // A connection per host.
    assert_eq!(
        run.lines_containing("Certificate OK").len(),
        3,
        "{}",
        run.log
    );

    // Without the CA: each provider's first handshake fails, no credentials are sent, and
    // nothing is cached. A one-shot inadyn exits 0 all the same (2.10): the log and the
    // untouched cache are what tell.
    let cache = inadyn_cache(f.dir.path());
    let untrusting = Inadyn::new(
        &f,
        "inadyn-untrusting",
        f.https(false),
        "192.0.2.51",
        RIGHT,
        &cache,
    );
    let answered = f.nic_updates();
    let run = untrusting.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    for text in [
        "The certificate is not trusted.",
        "SSL handshake with 127.0.0.1 failed: Error in the certificate.",
    ] {
        assert_eq!(run.lines_containing(text).len(), 2, "{text}:\n{}", run.log);
    }
    for text in [
        "Sending alias table update",
        "Successful alias table update",
    ] {
        assert!(
            run.lines_containing(text).is_empty(),
            "{text}:\n{}",
            run.log
        );
    }
    for host in HOSTS {
        let entry = cache.join(format!("{host}.cache"));
        assert_eq!(
            std::fs::read_to_string(&entry).expect("cache entry"),
            "",
            "{host}"
        );
    }
    f.nothing_changed(answered, "192.0.2.50");
}

/// A server with the account and its three hosts, and its metrics address.
struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
    metrics: SocketAddr,
    /// The test CA's certificate, when the server also listens for HTTPS.
    ca: Option<PathBuf>,
}

/// Where a client sends its updates.
#[derive(Clone, Copy)]
enum Endpoint<'a> {
    Http(SocketAddr),
    /// The HTTPS listener, the client trusting this CA, or (`None`) only the system's store.
    Https(SocketAddr, Option<&'a Path>),
}

impl Endpoint<'_> {
    fn addr(self) -> SocketAddr {
        match self {
            Endpoint::Http(addr) | Endpoint::Https(addr, _) => addr,
        }
    }

    fn ssl(self) -> bool {
        matches!(self, Endpoint::Https(..))
    }

    fn ca(self) -> Option<String> {
        match self {
            Endpoint::Https(_, Some(ca)) => Some(ca.to_str().expect("utf-8 path").to_owned()),
            _ => None,
        }
    }
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with_tls(false)
    }

    /// With an HTTPS listener beside the plain one, its certificate signed by a test CA.
    fn start_https() -> Fixture {
        Fixture::start_with_tls(true)
    }

    fn start_with_tls(tls: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = "metrics_listen = \"127.0.0.1:0\"\n".to_owned();
        let ca = tls.then(|| {
            let pki = Pki::new(dir.path());
            let (cert, key) = pki.issue("tls", 1);
            settings.push_str(&format!(
                "https_listen = \"127.0.0.1:0\"\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
            ));
            pki.ca()
        });
        let config = write_config(dir.path(), &format!("{settings}{ROOMY_QUOTAS}"));
        let data = dir.path().join("data");
        let server = Server::start(&data, Some(&config));
        let admin = |args: &[&str], stdin: &str| {
            let out = admin_command(&data, &config, args, stdin);
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        admin(
            &["user", "add", ACCOUNT, "--email", "b@x.example"],
            &format!("{ACCOUNT_PASSWORD}\n"),
        );
        for (host, password) in [
            (CAMS[0], "pw-cam1"),
            (CAMS[1], "pw-cam2"),
            (NAS, NAS_PASSWORD),
        ] {
            admin(
                &["host", "add", host, "--user", ACCOUNT],
                &format!("{password}\n"),
            );
        }
        let metrics = server.metrics_addr();
        Fixture {
            dir,
            server,
            metrics,
            ca,
        }
    }

    fn http(&self) -> Endpoint<'_> {
        Endpoint::Http(self.server.http)
    }

    /// The HTTPS listener, to a client that trusts the test CA or not.
    fn https(&self, trusting: bool) -> Endpoint<'_> {
        let ca = self.ca.as_deref().expect("started with HTTPS");
        Endpoint::Https(self.server.ready_field("https"), trusting.then_some(ca))
    }

    /// The sum of the series from `/metrics` that `pick` takes by name (0 while none was
    /// counted).
    fn metric_sum(&self, pick: impl Fn(&str) -> bool) -> u64 {
        let (status, text) = http_get(self.metrics, "/metrics", &[]);
        assert_eq!(status, 200);
        text.lines()
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                pick(name).then(|| value.parse::<f64>().expect("a number") as u64)
            })
            .sum()
    }

    /// One series' value from `/metrics` (0 while it was never counted).
    fn metric(&self, series: &str) -> u64 {
        self.metric_sum(|name| name == series)
    }

    /// Appends acknowledged by the log (recorded before the reply is sent).
    fn appends(&self) -> u64 {
        self.metric("ddns_log_append_seconds_count")
    }

    /// `/nic/update` requests answered with `code` (counted once per request).
    fn replies(&self, code: &str) -> u64 {
        self.metric(&format!(
            "ddns_ingest_replies_total{{path=\"nic_update\",code=\"{code}\"}}"
        ))
    }

    /// `/nic/update` requests answered, whatever the reply.
    fn nic_updates(&self) -> u64 {
        self.metric_sum(|name| name.starts_with("ddns_ingest_replies_total{path=\"nic_update\","))
    }

    /// No `/nic/update` reached the server since it had answered `answered`, and every host
    /// still has `address`.
    fn nothing_changed(&self, answered: u64, address: &str) {
        assert_eq!(
            self.nic_updates(),
            answered,
            "no request reached the server"
        );
        for host in HOSTS {
            assert_eq!(self.server.dig_short(&[host, "A"]), [address], "{host}");
        }
    }

    /// Every host still has `address` in its `rtype` record: an update of the other family
    /// leaves it alone.
    fn untouched(&self, rtype: &str, address: &str) {
        for host in HOSTS {
            assert_eq!(
                self.server.dig_short(&[host, rtype]),
                [address],
                "{host}: only the family sent is touched"
            );
        }
    }

    /// Runs `repeat`, a client sending every host's current address again: each host is
    /// answered `nochg`, and nothing is appended to the log.
    fn repeat_is_nochg(&self, repeat: impl FnOnce()) {
        let (appends, nochg) = (self.appends(), self.replies("nochg"));
        assert!(appends > 0, "the append count is exported");
        repeat();
        assert!(
            self.replies("nochg") > nochg,
            "the repeat was answered nochg"
        );
        assert_eq!(self.appends(), appends, "a repeat appends nothing");
    }
}

/// What a client run printed (stdout and stderr interleaved) and how it exited.
struct Run {
    code: Option<i32>,
    log: String,
}

impl Run {
    fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.log.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    fn lines_containing(&self, text: &str) -> Vec<&str> {
        self.log.lines().filter(|l| l.contains(text)).collect()
    }

    fn expect(&self, text: &str) {
        assert!(
            self.log.contains(text),
            "{text:?} missing from:\n{}",
            self.log
        );
    }
}

/// Runs `program` in `dir` to its end (killed past [`CLIENT_DEADLINE`]), its output into one file.
fn run(dir: &Path, program: &str, args: &[&str]) -> Run {
    let log_path = dir.join(format!("{program}.out"));
    let log = File::create(&log_path).expect("log file");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts ({e}); scripts/setup.sh --tests installs it"));
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{program} {args:?} still ran after {CLIENT_DEADLINE:?}; it said:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        log: std::fs::read_to_string(&log_path).expect("log read"),
    }
}

/// Writes a file only its owner reads (it holds passwords, as the clients' docs ask).
fn write_private(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("config written");
}

/// The passwords a client sends: the account's (for the cams) and the NAS's own.
#[derive(Clone, Copy)]
struct Passwords {
    account: &'static str,
    nas: &'static str,
}

const RIGHT: Passwords = Passwords {
    account: ACCOUNT_PASSWORD,
    nas: NAS_PASSWORD,
};

const WRONG: Passwords = Passwords {
    account: "not the password",
    nas: "nor this",
};

/// The record type that holds `ip`.
fn rtype(ip: &str) -> &'static str {
    if ip.contains(':') { "AAAA" } else { "A" }
}

/// ddclient set up against a fixture's server: its config `<name>.conf` and its cache
/// `<name>.cache`, in the fixture's dir.
struct Ddclient<'f> {
    f: &'f Fixture,
    config: PathBuf,
    cache: PathBuf,
}

impl<'f> Ddclient<'f> {
    /// dyndns2 to `server`, the address from `address` (config lines), the account's hosts in
    /// one host line (so one request) and the NAS with its host password.
    fn new(
        f: &'f Fixture,
        name: &str,
        server: Endpoint,
        address: &str,
        passwords: Passwords,
    ) -> Ddclient<'f> {
        let dir = f.dir.path();
        let config = dir.join(format!("{name}.conf"));
        let ssl = match server.ca() {
            Some(ca) => format!("ssl=yes\nssl_ca_file={ca}"),
            None if server.ssl() => "ssl=yes".to_owned(),
            None => "ssl=no".to_owned(),
        };
        write_private(
            &config,
            &format!(
                "protocol=dyndns2\n\
                 server={}\n\
                 {ssl}\n\
                 {address}\n\
                 login={ACCOUNT}\n\
                 password='{}'\n\
                 {},{}\n\
                 login={NAS}\n\
                 password='{}'\n\
                 {NAS}\n",
                server.addr(),
                passwords.account,
                CAMS[0],
                CAMS[1],
                passwords.nas
            ),
        );
        Ddclient {
            f,
            config,
            cache: dir.join(format!("{name}.cache")),
        }
    }

    /// `ddclient` once, in the foreground, with its pid file in the fixture's dir.
    fn run(&self, extra: &[&str]) -> Run {
        let dir = self.f.dir.path();
        let pid = dir.join("ddclient.pid");
        let mut args = vec![
            "-daemon=0",
            "-foreground",
            "-verbose",
            "-file",
            self.config.to_str().expect("utf-8 path"),
            "-cache",
            self.cache.to_str().expect("utf-8 path"),
            "-pid",
            pid.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        run(dir, "ddclient", &args)
    }

    /// Runs it: it exits 0 after one request per group, every host `good` at `ip`, which DNS
    /// answers.
    fn updates_to(&self, ip: &str) -> Run {
        let run = self.run(&[]);
        assert_eq!(run.code, Some(0), "{}", run.log);
        assert_eq!(
            run.lines_starting("SENDING:  GET /nic/update?").len(),
            2,
            "one request per group:\n{}",
            run.log
        );
        for host in HOSTS {
            run.expect(&format!(
                "SUCCESS:  updating {host}: good: IP address set to {ip}"
            ));
            assert_eq!(self.f.server.dig_short(&[host, rtype(ip)]), [ip], "{host}");
        }
        run
    }

    /// Runs it again with `-force`: every host is answered `nochg`, nothing is appended.
    fn repeat_is_nochg(&self) {
        self.f.repeat_is_nochg(|| {
            let run = self.run(&["-force"]);
            assert_eq!(run.code, Some(0), "{}", run.log);
            for host in HOSTS {
                run.expect(&format!("WARNING:  updating {host}: nochg: "));
            }
        });
    }
}

/// inadyn set up against a fixture's server: its config `<name>.conf` in the fixture's dir and
/// a cache dir from [`inadyn_cache`].
struct Inadyn<'f> {
    f: &'f Fixture,
    config: PathBuf,
    cache: PathBuf,
}

impl<'f> Inadyn<'f> {
    /// Two custom providers (dyndns2 to `server`), the account with its two hosts and the NAS
    /// with its host password; the address from a checkip command that prints `address`.
    fn new(
        f: &'f Fixture,
        name: &str,
        server: Endpoint,
        address: &str,
        passwords: Passwords,
        cache: &Path,
    ) -> Inadyn<'f> {
        let config = f.dir.path().join(format!("{name}.conf"));
        let (ssl, addr) = (server.ssl(), server.addr());
        let provider = |title: &str, user: &str, password: &str, hosts: &str| {
            format!(
                "custom {title} {{\n\
                 \x20   ssl = {ssl}\n\
                 \x20   username = \"{user}\"\n\
                 \x20   password = \"{password}\"\n\
                 \x20   ddns-server = \"{addr}\"\n\
                 \x20   ddns-path = \"/nic/update?hostname=%h&myip=%i\"\n\
                 \x20   checkip-command = \"echo {address}\"\n\
                 \x20   hostname = {{ {hosts} }}\n\
                 }}\n"
            )
        };
        let cams = format!("\"{}\", \"{}\"", CAMS[0], CAMS[1]);
        write_private(
            &config,
            &format!(
                "allow-ipv6 = true\n{}{}{}",
                server
                    .ca()
                    .map_or(String::new(), |ca| format!("ca-trust-file = \"{ca}\"\n")),
                provider("ddnsd:account", ACCOUNT, passwords.account, &cams),
                provider("ddnsd:host", NAS, passwords.nas, &format!("\"{NAS}\"")),
            ),
        );
        Inadyn {
            f,
            config,
            cache: cache.to_owned(),
        }
    }

    /// `inadyn` once, in the foreground, logging every request and reply, with its pid file in
    /// the fixture's dir.
    fn run(&self, extra: &[&str]) -> Run {
        let dir = self.f.dir.path();
        let pid = dir.join("inadyn.pid");
        let cache_dir = format!("--cache-dir={}", self.cache.to_str().expect("utf-8 path"));
        let mut args = vec![
            "--once",
            "--foreground",
            "--loglevel=debug",
            "-f",
            self.config.to_str().expect("utf-8 path"),
            &cache_dir,
            "-P",
            pid.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        run(dir, "inadyn", &args)
    }

    /// Runs it: it exits 0 after one HTTP/1.0 GET per host (the account's hosts with the
    /// account's credentials), every host updated to `ip`, which DNS answers.
    fn updates_to(&self, ip: &str) -> Run {
        let run = self.run(&[]);
        assert_eq!(run.code, Some(0), "{}", run.log);
        assert_eq!(
            run.lines_containing("Sending alias table update").len(),
            3,
            "{}",
            run.log
        );
        // inadyn percent-encodes the colons of an IPv6 address.
        let myip = ip.replace(':', "%3a");
        for host in HOSTS {
            run.expect(&format!("GET /nic/update?hostname={host}&myip={myip} "));
            run.expect(&format!(
                "Successful alias table update for {host} => new IP# {ip}"
            ));
            assert_eq!(self.f.server.dig_short(&[host, rtype(ip)]), [ip], "{host}");
        }
        run
    }

    /// Runs it again with `--force` (without it a one-shot inadyn sends nothing while its cache
    /// holds the address): every host is answered `nochg {ip}`, nothing is appended.
    fn repeat_is_nochg(&self, ip: &str) {
        self.f.repeat_is_nochg(|| {
            let run = self.run(&["--force"]);
            assert_eq!(run.code, Some(0), "{}", run.log);
            assert_eq!(
                run.lines_starting(&format!("nochg {ip}")).len(),
                3,
                "{}",
                run.log
            );
            for host in HOSTS {
                run.expect(&format!("Successful alias table update for {host}"));
            }
        });
    }
}

/// inadyn's cache dir, with an empty entry per host: inadyn then starts from "address unknown"
/// instead of resolving each name through the system's resolver (off the loopback).
fn inadyn_cache(dir: &Path) -> PathBuf {
    let cache = dir.join("inadyn-cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    for host in HOSTS {
        File::create(cache.join(format!("{host}.cache"))).expect("cache entry");
    }
    cache
}
