//! The tokio runtime the async targets run on: one per process, made on first use (after
//! afl's fork server has forked, so its threads exist in the process that fuzzes).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// Longest one input may take before the check calls it a hang (afl's own timeout is shorter
/// and catches it first under the fuzzer; this bounds the corpus replay).
const INPUT_TIMEOUT: Duration = Duration::from_secs(20);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Runs `future` to its end on the shared runtime; a future that takes longer than
/// [`INPUT_TIMEOUT`] is a hang, and fails the check.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(async {
        tokio::time::timeout(INPUT_TIMEOUT, future)
            .await
            .expect("the input was answered in time (a hang otherwise)")
    })
}

/// Runs `future` on the shared runtime without the hang bound (setting up a target).
pub(crate) fn setup<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Spawns `future` on the shared runtime (it runs while any `block_on` does).
pub(crate) fn spawn<F>(future: F)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    drop(runtime().spawn(future));
}

/// A new empty directory for this process's `name` (a projector's snapshot), under
/// `$TMPDIR/ddns-fuzz/`. The harnesses keep their servers in statics, which are never dropped,
/// so a directory outlives its process: those of processes that have ended are removed here.
pub(crate) fn scratch_dir(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join("ddns-fuzz");
    std::fs::create_dir_all(&root).expect("creates the scratch root");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let pid = file_name.to_string_lossy();
            let pid = pid.split('-').next().unwrap_or_default();
            if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creates a scratch directory");
    dir
}
