//! HTTPS end to end (SPEC §3): the real binary with `[tls]`, a test CA and certificates made
//! by Debian's `openssl`, real `curl` for what clients see, and a rustls client for what only
//! it can show (which certificate a connection got, whether a session resumed).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Pki, ROOMY_QUOTAS, Server, write_config};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};

/// A rustls client that trusts the CA, resuming sessions as rustls does by default.
fn rustls_client(pki: &Pki) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.ca()).expect("CA read") {
        roots.add(cert.expect("CA parses")).expect("CA added");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn der(pem: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(pem).expect("a certificate")
}

/// One TLS connection, kept alive across requests.
struct Client {
    tls: StreamOwned<ClientConnection, TcpStream>,
}

impl Client {
    fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).expect("connects");
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let name = ServerName::try_from("localhost").expect("a name");
        let conn = ClientConnection::new(config.clone(), name).expect("client");
        let mut client = Client {
            tls: StreamOwned::new(conn, tcp),
        };
        while client.tls.conn.is_handshaking() {
            client
                .tls
                .conn
                .complete_io(&mut client.tls.sock)
                .expect("handshake");
        }
        client
    }

    fn peer_certificate(&self) -> CertificateDer<'static> {
        self.tls.conn.peer_certificates().expect("certificates")[0].clone()
    }

    fn resumed(&self) -> bool {
        self.tls.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// `GET path` on this connection: (status, body). The reply has a content-length.
    fn get(&mut self, path: &str) -> (u16, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n");
        self.tls.write_all(request.as_bytes()).expect("sends");
        self.tls.flush().expect("flushed");
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.tls.read(&mut chunk).expect("reads");
            assert!(
                n > 0,
                "closed early: {:?}",
                String::from_utf8_lossy(&response)
            );
            response.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&response);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                if body.len() >= len {
                    let status = head[9..12].parse().expect("a status");
                    return (status, body[..len].to_owned());
                }
            }
        }
    }
}

/// `curl -sS ARGS`: (exit code, stdout, stderr).
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl runs (apt-get install curl)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits (at most 30 s) for a log line containing `text`, after the first `seen` lines.
fn wait_for_log(server: &mut Server, seen: usize, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if server.drain_log()[seen..].iter().any(|l| l.contains(text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {text:?} in the log:\n{}", server.log.join("\n"));
}

fn sighup(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn https_serves_devices_and_the_portal_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path());
    let (first_cert, first_key) = pki.issue("first", 1);
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    std::fs::copy(&first_cert, &cert).expect("copied");
    std::fs::copy(&first_key, &key).expect("copied");
    let config = write_config(
        dir.path(),
        &format!(
            "https_listen = \"127.0.0.1:0\"\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n{ROOMY_QUOTAS}"
        ),
    );
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Some(&config));
    let https = server.ready_field("https");
    let portal = server.portal.expect("a portal");
    let ca = pki.ca();
    let ca = ca.to_str().expect("utf-8");

    // The device API over HTTPS, to a client that trusts the CA; plain HTTP beside it.
    let (code, body, err) = curl(&[
        "--cacert",
        ca,
        &format!("https://127.0.0.1:{}/ipdetect.aspx", https.port()),
    ]);
    assert_eq!((code, body.as_str()), (0, "127.0.0.1"), "{err}");
    let (code, body, err) = curl(&[
        "--cacert",
        ca,
        &format!("https://localhost:{}/nic/checkip", https.port()),
    ]);
    assert_eq!(
        (code, body.trim()),
        (0, "Current IP Address: 127.0.0.1"),
        "{err}"
    );
    assert_eq!(server.reply("/ipdetect.aspx"), "127.0.0.1");
    // A client that does not trust the CA stops at the certificate (curl's 60).
    let (code, _, err) = curl(&[&format!("https://127.0.0.1:{}/ipdetect.aspx", https.port())]);
    assert_eq!(code, 60, "{err}");

    // The portal speaks HTTPS, with the `__Host-` cookie.
    let (code, head, err) = curl(&[
        "--cacert",
        ca,
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{}/", portal.port()),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.lines().any(|l| l
            .to_ascii_lowercase()
            .starts_with("set-cookie: __host-ddnsd_session=")
            && l.contains("Secure")),
        "{head}"
    );

    // Sessions resume (a device's next poll skips the full handshake).
    let client = rustls_client(&pki);
    let mut kept = Client::connect(&client, https);
    assert_eq!(kept.peer_certificate(), der(&first_cert));
    assert_eq!(kept.get("/ipdetect.aspx"), (200, "127.0.0.1".to_owned()));
    let mut again = Client::connect(&client, https);
    assert!(again.resumed(), "the second connection resumed its session");
    assert_eq!(again.get("/nic/checkip").0, 200);

    // A new certificate on SIGHUP: new connections present it; an open one goes on.
    let (second_cert, second_key) = pki.issue("second", 2);
    std::fs::copy(&second_cert, &cert).expect("copied");
    std::fs::copy(&second_key, &key).expect("copied");
    let seen = server.drain_log().len();
    sighup(&server);
    wait_for_log(&mut server, seen, "reloaded the TLS certificate");
    let fresh = rustls_client(&pki);
    let mut new = Client::connect(&fresh, https);
    assert_eq!(new.peer_certificate(), der(&second_cert));
    assert_eq!(new.get("/ipdetect.aspx").0, 200);
    assert_eq!(kept.get("/ipdetect.aspx"), (200, "127.0.0.1".to_owned()));
    assert_eq!(
        Client::connect(&fresh, portal).peer_certificate(),
        der(&second_cert)
    );

    // A broken file on SIGHUP: logged, and the certificate in use stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ntruncated").expect("written");
    let seen = server.drain_log().len();
    sighup(&server);
    wait_for_log(&mut server, seen, "did not load");
    let mut after = Client::connect(&rustls_client(&pki), https);
    assert_eq!(after.peer_certificate(), der(&second_cert));
    assert_eq!(after.get("/ipdetect.aspx").0, 200);
    // A key that is not the certificate's is refused the same way.
    std::fs::copy(&second_cert, &cert).expect("copied");
    std::fs::copy(&first_key, &key).expect("copied");
    let seen = server.drain_log().len();
    sighup(&server);
    wait_for_log(&mut server, seen, "did not load");
    let (code, body, err) = curl(&[
        "--cacert",
        ca,
        &format!("https://localhost:{}/ipdetect.aspx", https.port()),
    ]);
    assert_eq!((code, body.as_str()), (0, "127.0.0.1"), "{err}");
}

#[test]
fn plain_http_is_the_default_and_sighup_does_not_stop_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(&dir.path().join("data"), None);
    assert!(!server.log.iter().any(|l| l.contains(" https=")));
    let seen = server.drain_log().len();
    sighup(&server);
    wait_for_log(&mut server, seen, "nothing to reload");
    assert_eq!(server.reply("/ipdetect.aspx"), "127.0.0.1");
    let portal = server.portal.expect("a portal");
    let (status, _) = common::http_get(portal, "/", &[]);
    assert_eq!(status, 200);
}

#[test]
fn tls_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (text, expected) in [
        ("https_listen = \"127.0.0.1:0\"\n", "needs [tls]"),
        ("[tls]\ncert_file = \"/nonexistent.pem\"\n", "set both"),
        (
            "[tls]\ncert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent.key\"\n",
            "/nonexistent.pem",
        ),
    ] {
        let config = write_config(dir.path(), text);
        let out = Command::new(common::BIN)
            .args([
                "serve",
                "--http-listen",
                "127.0.0.1:0",
                "--dns-listen",
                "127.0.0.1:0",
            ])
            .args(["--portal-listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .env_remove("DDNSD_CONFIG")
            .output()
            .expect("ddnsd runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: started");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}
