//! The example configs in deploy/ are complete, valid configs: every key is one ddnsd reads
//! (the `[kafka]` table refuses unknown keys) and each loads once its key placeholder is filled.

mod common;

use std::process::Command;

use common::BIN;

const EXAMPLES: [&str; 2] = ["ingest.example.toml", "dns.example.toml"];

#[test]
fn the_example_configs_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    for example in EXAMPLES {
        let path = format!("{}/../deploy/{example}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("example exists");
        assert!(text.contains("log = \"kafka\""), "{example}");
        let filled = text.replace("REPLACE-WITH-64-HEX-DIGITS", &"ab".repeat(32));
        let config = dir.path().join(example);
        std::fs::write(&config, filled).expect("written");
        // `cipher` loads and checks the whole config (and the vendor's key) without serving.
        let out = Command::new(BIN)
            .args(["cipher", "--mac", "00:11:22:33:44:55", "--config"])
            .arg(&config)
            .output()
            .expect("ddnsd runs");
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty());
        // And a typo is caught, not ignored.
        let typo = text
            .replace("REPLACE-WITH-64-HEX-DIGITS", &"ab".repeat(32))
            .replace("client_id", "clientid");
        std::fs::write(&config, typo).expect("written");
        let out = Command::new(BIN)
            .args(["cipher", "--mac", "00:11:22:33:44:55", "--config"])
            .arg(&config)
            .output()
            .expect("ddnsd runs");
        assert!(!out.status.success(), "{example}: a misspelt key must fail");
    }
}
