//! Per-process scratch directories and small process helpers (shared with
//! kmirror-test-support).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh directory `<temp>/kmirror-tests/<kind>-<pid>-<n>-<nanos>`.
pub fn new_dir(kind: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join("kmirror-tests").join(format!(
        "{kind}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create the scratch directory {}: {e}", dir.display()));
    // Absolute, so it can go into URLs and survive a change of directory.
    dir.canonicalize().unwrap_or(dir)
}

/// Removes a scratch directory, unless the thread is panicking: then the
/// directory (logs, data) is kept for the post-mortem and its path printed.
pub fn remove_dir(dir: &Path, what: &str) {
    if std::thread::panicking() {
        eprintln!("{what}: kept {} for inspection", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The last `max` bytes of a file, as text (for failure messages).
pub fn tail(path: &Path, max: usize) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_end(&mut text);
    }
    let start = text.len().saturating_sub(max);
    let cut = if start > 0 { "[...]\n" } else { "" };
    format!(
        "{cut}{}",
        String::from_utf8_lossy(text.get(start..).unwrap_or_default())
    )
}

/// Waits for `child` until `timeout`; kills it and returns `None` when it
/// runs longer.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
