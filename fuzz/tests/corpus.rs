//! The corpus replay: every file under `fuzz/corpus/<target>/` through its target's check, on
//! stable Rust and without afl (the test command runs it; `scripts/fuzz.sh` fuzzes for longer
//! and adds what it finds). A failing input is named by its path.

use std::path::Path;

fn replay(target: &str) {
    let (_, check) = ddns_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no seeds", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("a corpus file reads");
        let outcome = std::panic::catch_unwind(|| check(&data));
        if let Err(panic) = outcome {
            std::panic::resume_unwind(Box::new(format!(
                "{}: {}",
                file.display(),
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic")
            )));
        }
    }
}

#[test]
fn every_target_has_a_replay() {
    let here = include_str!("corpus.rs");
    for (name, _) in ddns_fuzz::TARGETS {
        assert!(
            here.contains(&format!("fn {name}()")),
            "no replay test for {name}"
        );
    }
}

#[test]
fn codec() {
    replay("codec");
}

#[test]
fn dns() {
    replay("dns");
}

#[test]
fn device_api() {
    replay("device_api");
}

#[test]
fn dyndns2() {
    replay("dyndns2");
}

#[test]
fn dvr() {
    replay("dvr");
}

#[test]
fn acme() {
    replay("acme");
}

#[test]
fn http_framing() {
    replay("http_framing");
}

#[test]
fn token() {
    replay("token");
}

#[test]
fn zonefile() {
    replay("zonefile");
}

#[test]
fn portal() {
    replay("portal");
}

#[test]
fn quic_wire() {
    replay("quic_wire");
}
