//! Where the test tools live; the same rules as `xtask/src/paths.rs`.

use std::path::PathBuf;

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn cache_root() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("kmirror")
}

/// `${KMIRROR_VENV:-$HOME/.cache/kmirror/venv}`.
fn venv_dir() -> PathBuf {
    env_path("KMIRROR_VENV").unwrap_or_else(|| cache_root().join("venv"))
}

/// The Python interpreter of the venv holding confluent-kafka and
/// kafka-python.
///
/// # Panics
///
/// If the venv does not exist, with a message saying to run
/// `cargo xtask brokers`.
pub fn venv_python() -> PathBuf {
    let python = venv_dir().join("bin").join("python");
    assert!(
        python.is_file(),
        "the Python venv with confluent-kafka and kafka-python is missing at {}; run `cargo xtask brokers` \
         (set KMIRROR_VENV to use another venv)",
        python.display()
    );
    python
}
