//! The web portal in a real browser: Debian's Chromium, driven over WebDriver (fantoccini and
//! chromedriver), against the real binary. A person signs up (after the duplicate check), signs
//! in, adds a group and two hosts with host passwords of an old DVR's kind, a DVR updates one
//! host, the person edits the other's address, and the real `dig` gets both answers.
//!
//! Along the way it takes screenshots of the sign-up page and the host list (PNGs, checked);
//! with `DDNSD_UPDATE_SCREENSHOTS=1` it writes them to `docs/screenshots/` for the README (not by
//! default: the host list shows the time, so every run would change the committed pictures).
//!
//! Needs `chromium` and `chromium-driver` (`scripts/setup.sh --tests`): without them the test
//! fails, it never skips.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// A desktop browser window, so the screenshots show what most visitors see.
const WINDOW: (u32, u32) = (1280, 1000);
/// The longest any one step (a page load, chromedriver starting, DNS catching up) may take.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

const ZONE: &str = "dyn.example";
const TAKEN_USER: &str = "taken01";
const USER: &str = "brian01";
const PASSWORD: &str = "a long pass phrase";
const GROUP: &str = "brian";
/// Host passwords as an old DVR takes them: 3 to 8 lowercase letters.
const GROUPED_PASSWORD: &str = "kestrel";
const PLAIN_PASSWORD: &str = "osprey";
const DVR_IP: &str = "198.51.100.7";
const EDITED_IP: &str = "203.0.113.9";
const NEVER: &str = "0000-00-00 00:00:00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_adds_hosts_and_dns_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), ROOMY_QUOTAS);
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&config));
    let portal = server.portal.expect("the server runs the portal");
    // Someone else already has this ID: the duplicate check must say so.
    let out = admin_command(
        &data,
        &config,
        &["user", "add", TAKEN_USER, "--email", "taken@example.net"],
        "another pass phrase\n",
    );
    assert!(out.status.success(), "ddnsd user add: {out:?}");

    let profile = tempfile::tempdir().expect("tempdir");
    let driver = ChromeDriver::start();
    let browser = Browser::open(&driver, profile.path(), portal).await;
    let grouped = format!("rifa001.{GROUP}.{ZONE}");
    let plain = format!("rifa002.{ZONE}");

    // Sign up, with the duplicate check both ways.
    browser.goto("/").await;
    browser.expect_text("h1", "Sign in").await;
    browser
        .click_to_load(Locator::LinkText("Sign Up (Create Account)"))
        .await;
    browser.expect_text("h1", "Create Account").await;
    let check_form = "form[method=get][action='/signup']";
    browser
        .type_into(&format!("{check_form} input[name=user_id]"), TAKEN_USER)
        .await;
    browser.submit(check_form).await;
    browser
        .expect_text("#check", &format!("Already existed [{TAKEN_USER}]"))
        .await;
    browser
        .type_into(&format!("{check_form} input[name=user_id]"), USER)
        .await;
    browser.submit(check_form).await;
    browser
        .expect_text("#check", &format!("Not existed [{USER}]"))
        .await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#password_confirm", PASSWORD).await;
    browser.type_into("#email", "brian@example.net").await;
    browser.save_screenshot("signup.png").await;
    browser.submit("form[method=post][action='/signup']").await;

    // Sign in.
    browser
        .expect_text(
            ".notice",
            &format!("Account {USER} created. Sign in below."),
        )
        .await;
    assert_eq!(browser.value("#user_id").await, USER, "ID filled in");
    browser.type_into("#password", PASSWORD).await;
    browser.submit("form[action='/login']").await;
    browser
        .expect_text("#welcome", "Welcome to ddnsd DDNS Service")
        .await;
    browser
        .click_to_load(Locator::LinkText("Your DDNS hosts"))
        .await;
    browser.expect_text("h1", "DDNS Hosts").await;
    browser.expect_text("#group_count", "0").await;

    // A group, with the duplicate check both ways, and refused a second time.
    let group_check = "#add-group form[method=get]";
    let group_form = "#add-group form[method=post]";
    let group_fqdn = format!("{GROUP}.{ZONE}");
    browser
        .type_into(&format!("{group_check} input[name=check_group]"), GROUP)
        .await;
    browser.submit(group_check).await;
    browser
        .expect_text(
            "#group_check",
            &format!("[Group Name] => Not existed [{group_fqdn}]"),
        )
        .await;
    browser.type_into("#group", GROUP).await;
    browser.submit(group_form).await;
    browser
        .expect_text("#notice", &format!("Group {group_fqdn} registered."))
        .await;
    browser.expect_text("#group_count", "1").await;
    browser
        .type_into(&format!("{group_check} input[name=check_group]"), GROUP)
        .await;
    browser.submit(group_check).await;
    browser
        .expect_text(
            "#group_check",
            &format!("[Group Name] => Already existed [{group_fqdn}]"),
        )
        .await;
    browser.type_into("#group", GROUP).await;
    browser.submit(group_form).await;
    browser
        .expect_text(
            "#error",
            &format!("[Group Name] => Already existed [{group_fqdn}]"),
        )
        .await;
    browser.expect_text("#group_count", "1").await;

    // A host with group use on, then one with it off, each with a typed host password.
    let host_check = "#add-host form[method=get]";
    let host_form = "#add-host form[method=post]";
    browser.select("#host_group", GROUP).await;
    browser.type_into("#host", "rifa001").await;
    browser.type_into("#host_password", GROUPED_PASSWORD).await;
    browser.submit(host_form).await;
    browser
        .expect_text("#notice", &format!("USER HOST REGISTRATION: {grouped}"))
        .await;
    browser.expect_absent("#generated").await;
    browser
        .select(&format!("{host_check} select[name=in_group]"), GROUP)
        .await;
    browser
        .type_into(&format!("{host_check} input[name=check_host]"), "rifa001")
        .await;
    browser.submit(host_check).await;
    browser
        .expect_text(
            "#host_check",
            &format!("[DNS Name] => Already existed [{grouped}]"),
        )
        .await;
    browser
        .select(&format!("{host_check} select[name=in_group]"), "")
        .await;
    browser
        .type_into(&format!("{host_check} input[name=check_host]"), "rifa002")
        .await;
    browser.submit(host_check).await;
    browser
        .expect_text(
            "#host_check",
            &format!("[DNS Name] => Not existed [{plain}]"),
        )
        .await;
    browser.select("#host_group", "").await;
    browser.type_into("#host", "rifa002").await;
    browser.type_into("#host_password", PLAIN_PASSWORD).await;
    browser.submit(host_form).await;
    browser
        .expect_text("#notice", &format!("USER HOST REGISTRATION: {plain}"))
        .await;
    browser.expect_absent("#generated").await;

    // Both wait for their first update.
    browser.click_to_load(Locator::LinkText("Hosts")).await;
    browser.expect_text("#host_count", "2").await;
    for fqdn in [&grouped, &plain] {
        let row = browser.host_row(fqdn).await;
        assert_eq!(
            (row.updated.as_str(), row.ip.as_str(), row.status.as_str()),
            (NEVER, "", "STANDBY"),
            "{fqdn}: {row:?}"
        );
    }

    // The DVR updates its host; the list shows it after a reload.
    let (status, body) = http_get(
        server.http,
        &format!("/dvr/update?host={grouped}&pw={GROUPED_PASSWORD}&ip={DVR_IP}"),
        &[],
    );
    assert_eq!((status, body.trim()), (200, "ACT"), "/dvr/update");
    let deadline = Instant::now() + STEP_DEADLINE;
    let row = loop {
        browser.reload().await;
        let row = browser.host_row(&grouped).await;
        if row.status != "STANDBY" || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (row.ip.as_str(), row.status.as_str()),
        (DVR_IP, "OK"),
        "{grouped} after the DVR's update: {row:?}"
    );
    assert!(
        is_time(&row.updated) && row.updated != NEVER,
        "{grouped} last updated: {row:?}"
    );
    assert_eq!(
        browser.host_row(&plain).await.status,
        "STANDBY",
        "{plain} was not updated"
    );
    browser.save_screenshot("hosts.png").await;

    // The person sets the other host's address on its Edit page.
    browser
        .click_to_load(Locator::Css(&format!("a[href='/hosts/{plain}/edit']")))
        .await;
    browser.expect_text("h1", "Editing Host").await;
    browser.type_into("#ip", EDITED_IP).await;
    browser
        .submit(&format!("form[action='/hosts/{plain}/edit']"))
        .await;
    browser
        .expect_text(".notice", "YOUR HOST IS SUCCESSFULLY CHANGED!!")
        .await;
    let summary = browser.text("table.summary").await;
    assert!(summary.contains(EDITED_IP), "edit page: {summary}");
    browser
        .click_to_load(Locator::LinkText("Back to the host list"))
        .await;
    let row = browser.host_row(&plain).await;
    assert_eq!(row.ip, EDITED_IP, "{plain} after the edit: {row:?}");
    assert_eq!(browser.host_row(&grouped).await.ip, DVR_IP);

    // DNS answers both names.
    for (fqdn, ip) in [(&grouped, DVR_IP), (&plain, EDITED_IP)] {
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            let answer = server.dig_short(&[fqdn, "A"]);
            if answer == [ip] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dig {fqdn} A: {answer:?}, want {ip}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    browser.close().await;
}

/// `YYYY-MM-DD HH:MM:SS`.
fn is_time(s: &str) -> bool {
    s.len() == 19
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
}

/// A chromedriver on a free loopback port, in a process group of its own so that dropping it
/// ends Chromium too, even when the test panics before closing the session.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser test needs Debian's chromium and \
                 chromium-driver; run scripts/setup.sh --tests"
            );
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("chromedriver starts (run scripts/setup.sh --tests)");
        let deadline = Instant::now() + STEP_DEADLINE;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = child.try_wait().expect("chromedriver's status") {
                panic!("chromedriver exited before listening: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromedriver did not listen on port {port} within {STEP_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the host list, as the page shows it.
#[derive(Debug)]
struct HostRow {
    updated: String,
    ip: String,
    status: String,
}

/// A Chromium session on the portal, with the steps a person takes, each waited for and each
/// failing with what the page showed.
struct Browser {
    client: Client,
    base: String,
}

impl Browser {
    async fn open(driver: &ChromeDriver, profile: &Path, portal: SocketAddr) -> Browser {
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal");
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("chromedriver starts a Chromium session");
        client
            .set_window_size(WINDOW.0, WINDOW.1)
            .await
            .expect("window resized");
        Browser {
            client,
            base: format!("http://{portal}"),
        }
    }

    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client.goto(&url).await.expect("page loads");
    }

    async fn reload(&self) {
        self.client.refresh().await.expect("page reloads");
    }

    /// The URL and text of the page, for failure messages.
    async fn page(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string());
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no body: {e})"),
        };
        format!("{url}\n---\n{text}\n---")
    }

    async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("{css}: {e} on {}", self.page().await),
        }
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        element.text().await.expect("element text")
    }

    async fn value(&self, css: &str) -> String {
        let element = self.find(css).await;
        element
            .prop("value")
            .await
            .expect("element value")
            .unwrap_or_default()
    }

    async fn expect_text(&self, css: &str, want: &str) {
        let got = self.text(css).await;
        if got.trim() != want {
            panic!("{css}: {got:?}, want {want:?} on {}", self.page().await);
        }
    }

    async fn expect_absent(&self, css: &str) {
        let found = self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all");
        if !found.is_empty() {
            panic!("{css} is on {}", self.page().await);
        }
    }

    /// Clears a field and types into it, key by key.
    async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("field cleared");
        field.send_keys(text).await.expect("keys typed");
    }

    /// Picks the option whose value is `value`.
    async fn select(&self, css: &str, value: &str) {
        let select = self.find(css).await;
        select
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css}: no option {value:?}: {e}"));
    }

    /// Clicks the submit button of the form `form`, and waits for the page it loads.
    async fn submit(&self, form: &str) {
        let button = format!("{form} button[type=submit]");
        self.click_to_load(Locator::Css(&button)).await;
    }

    /// Clicks what `locator` finds and waits until the next page has loaded: the old document
    /// gets a mark, and the wait ends when a complete document without it is there.
    async fn click_to_load(&self, locator: Locator<'_>) {
        let element = match self.client.find(locator).await {
            Ok(element) => element,
            Err(e) => panic!("{locator:?}: {e} on {}", self.page().await),
        };
        self.client
            .execute("document.documentElement.dataset.stale = '1'", vec![])
            .await
            .expect("page marked");
        element.click().await.expect("clicked");
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            // Errors while the old document unloads are part of the wait.
            let loaded = self
                .client
                .execute(
                    "return document.readyState === 'complete' \
                     && document.documentElement.dataset.stale === undefined",
                    vec![],
                )
                .await;
            if loaded.is_ok_and(|v| v == json!(true)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "no new page within {STEP_DEADLINE:?} after clicking {locator:?}; still on {}",
                    self.page().await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The host list's line for `fqdn`.
    async fn host_row(&self, fqdn: &str) -> HostRow {
        let rows = self
            .client
            .execute(
                "return [...document.querySelectorAll('table.hosts tbody tr')] \
                 .map(r => [...r.cells].map(c => c.innerText.trim()))",
                vec![],
            )
            .await
            .expect("host rows read");
        let rows: Vec<Vec<String>> = serde_json::from_value(rows).expect("rows of strings");
        // No, Last Updated, Domain Name, Live / Playback, IP Address, Status, Edit.
        match rows
            .iter()
            .find(|cells| cells.get(2).map(String::as_str) == Some(fqdn))
        {
            Some(cells) if cells.len() == 7 => HostRow {
                updated: cells[1].clone(),
                ip: cells[4].clone(),
                status: cells[5].clone(),
            },
            _ => panic!("no line for {fqdn} in {rows:?} on {}", self.page().await),
        }
    }

    /// Takes a PNG of the window; saves it to `docs/screenshots/name` for the README when
    /// `DDNSD_UPDATE_SCREENSHOTS=1`.
    async fn save_screenshot(&self, name: &str) {
        // A headless window's scrollbar and a blinking caret are noise in the README's pictures.
        self.client
            .execute(
                "document.documentElement.style.scrollbarWidth = 'none'; \
                 document.activeElement?.blur()",
                vec![],
            )
            .await
            .expect("scrollbar hidden, focus dropped");
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "a picture"
        );
        if std::env::var_os("DDNSD_UPDATE_SCREENSHOTS").is_none_or(|v| v != "1") {
            return;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots created");
        std::fs::write(dir.join(name), png).expect("screenshot written");
    }

    /// Ends the session, which closes Chromium.
    async fn close(self) {
        self.client.close().await.expect("session closed");
    }
}
