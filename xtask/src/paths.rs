//! Where the test tooling lives on this machine, shared by every command.

use std::path::{Path, PathBuf};

/// The nisshi version the test infrastructure is pinned to.
pub(crate) const NISSHI_VERSION: &str = "0.8.1";

/// The root of the workspace (the parent of this crate's directory).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Canonicalize so a symlinked scratch copy still points at the real tree.
    let manifest_dir = manifest_dir
        .canonicalize()
        .unwrap_or_else(|_| manifest_dir.to_path_buf());
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// This crate's directory (holds `python/`).
pub(crate) fn xtask_dir() -> PathBuf {
    workspace_root().join("xtask")
}

fn cache_root() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("kmirror")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// `${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}`: installed tools, one
/// directory per tool and version.
pub(crate) fn tools_root() -> PathBuf {
    env_path("KMIRROR_TOOLS").unwrap_or_else(|| cache_root().join("tools"))
}

/// `${KMIRROR_VENV:-$HOME/.cache/kmirror/venv}`: the Python virtualenv with
/// the third-party Kafka clients.
pub(crate) fn venv_dir() -> PathBuf {
    env_path("KMIRROR_VENV").unwrap_or_else(|| cache_root().join("venv"))
}

/// The `cargo install --root` directory of the pinned nisshi.
pub(crate) fn nisshi_root() -> PathBuf {
    tools_root().join(format!("nisshi-{NISSHI_VERSION}"))
}

/// The pinned nisshi binary.
pub(crate) fn nisshi_bin() -> PathBuf {
    nisshi_root().join("bin").join("nisshi")
}

/// The venv's Python interpreter.
pub(crate) fn venv_python() -> PathBuf {
    venv_dir().join("bin").join("python")
}
