//! `cargo xtask brokers`: install Apache Kafka (from Maven Central) and the
//! Python clients. nisshi, the earlier stand-in broker, is installed only
//! on demand (`cargo xtask brokers --nisshi`, or by the commands that still
//! use it: `fixtures` and `latency --nisshi`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;
use crate::{kafka_dist, paths};

/// The oldest rustc that builds nisshi 0.8.1 (hence the nightly toolchain
/// while stable is older).
const NISSHI_MIN_RUSTC_MINOR: u32 = 96;

/// Python packages of the venv: (import name, distribution, pinned version).
pub(crate) const PYTHON_PINS: &[(&str, &str, &str)] = &[
    ("confluent_kafka", "confluent-kafka", "2.16.1"),
    ("kafka", "kafka-python", "3.0.12"),
];

/// Installs what is missing and prints where everything is; `with_nisshi`
/// also installs nisshi (about 13 minutes on 2 cores, nightly toolchain).
pub(crate) fn run(with_nisshi: bool) -> Result<()> {
    let started = std::time::Instant::now();
    println!("java:        {}", kafka_dist::java_version()?);
    let launcher = kafka_dist::ensure_all()?;
    let python = ensure_venv()?;
    let nisshi = if with_nisshi {
        Some(ensure_nisshi()?)
    } else {
        None
    };
    println!();
    println!("tools root:  {}", paths::tools_root().display());
    println!("kafka-tool:  {}", launcher.display());
    if let Some(nisshi) = nisshi {
        println!("nisshi:      {}", nisshi.display());
    }
    println!("venv:        {}", paths::venv_dir().display());
    println!("venv python: {}", python.display());
    println!("took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The version line `nisshi --version` prints, if the binary runs.
pub(crate) fn nisshi_version(bin: &Path) -> Option<String> {
    let output = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Installs nisshi unless the pinned version is already in the tools dir;
/// returns the binary's path.
pub(crate) fn ensure_nisshi() -> Result<PathBuf> {
    let bin = paths::nisshi_bin();
    let wanted = paths::NISSHI_VERSION;
    if bin.is_file() {
        match nisshi_version(&bin) {
            Some(version) if version.split_whitespace().any(|word| word == wanted) => {
                println!(
                    "nisshi {wanted}: already installed at {} (skipped)",
                    bin.display()
                );
                return Ok(bin);
            }
            other => println!(
                "nisshi at {} reports {:?}, not {wanted}: reinstalling",
                bin.display(),
                other.unwrap_or_else(|| "nothing".to_owned())
            ),
        }
    }
    check_nightly()?;
    let root = paths::nisshi_root();
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    println!(
        "nisshi {wanted}: installing into {} (cargo +nightly install; about 13 minutes on 2 cores)",
        root.display()
    );
    let mut command = Command::new("cargo");
    command
        .args([
            "+nightly",
            "install",
            "nisshi",
            "--version",
            wanted,
            "--locked",
        ])
        .args([
            "--no-default-features",
            "--features",
            "dynostore,libsql",
            "--root",
        ])
        .arg(&root)
        // Outside the workspace, so its .cargo/config.toml does not apply.
        .current_dir(&root);
    if bin.exists() {
        // cargo would otherwise keep the broken or foreign binary.
        command.arg("--force");
    }
    scrub_cargo_env(&mut command);
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo +nightly install nisshi --version {wanted}` failed ({status})"
        ));
    }
    match nisshi_version(&bin) {
        Some(version) if version.split_whitespace().any(|word| word == wanted) => Ok(bin),
        other => Err(format!(
            "installed nisshi at {} but `nisshi --version` reports {other:?}",
            bin.display()
        )),
    }
}

/// Removes what `cargo run` put into our environment that would redirect a
/// nested `cargo install` (target dir, pinned toolchain, compiler paths).
fn scrub_cargo_env(command: &mut Command) {
    for name in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO",
    ] {
        command.env_remove(name);
    }
}

/// Fails with instructions unless a nightly toolchain new enough for nisshi
/// is installed.
fn check_nightly() -> Result<()> {
    let mut command = Command::new("rustc");
    command
        .args(["+nightly", "--version"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    scrub_cargo_env(&mut command);
    let output = command.output();
    let hint = format!(
        "nisshi {} needs rustc 1.{NISSHI_MIN_RUSTC_MINOR} or newer, which only the nightly \
         toolchain provides here; install it with `rustup toolchain install nightly --profile minimal`",
        paths::NISSHI_VERSION
    );
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            return Err(format!(
                "the nightly Rust toolchain is missing ({}). {hint}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot run `rustc +nightly --version` ({e}). {hint}"
            ));
        }
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    // "rustc 1.97.0-nightly (hash date)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(minor) if minor >= NISSHI_MIN_RUSTC_MINOR => {
            println!("nightly toolchain: {version}");
            Ok(())
        }
        _ => Err(format!(
            "the nightly toolchain is too old ({version}). {hint}"
        )),
    }
}

/// The installed versions of [`PYTHON_PINS`] in the venv, in order, if all
/// import.
fn venv_versions(python: &Path) -> Option<Vec<String>> {
    let mut script = String::from("import importlib.metadata as metadata\n");
    for (module, dist, _) in PYTHON_PINS {
        script.push_str(&format!(
            "import {module}\nprint(metadata.version({dist:?}))\n"
        ));
    }
    let output = Command::new(python)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.trim().to_owned())
            .collect(),
    )
}

/// Creates the venv and installs the pinned clients unless they already
/// import at the pinned versions; returns the venv's Python.
pub(crate) fn ensure_venv() -> Result<PathBuf> {
    let venv = paths::venv_dir();
    let python = paths::venv_python();
    let pinned: Vec<String> = PYTHON_PINS
        .iter()
        .map(|(_, _, v)| (*v).to_owned())
        .collect();
    let describe = || {
        PYTHON_PINS
            .iter()
            .map(|(_, dist, version)| format!("{dist}=={version}"))
            .collect::<Vec<_>>()
    };
    if python.is_file() {
        match venv_versions(&python) {
            Some(found) if found == pinned => {
                println!(
                    "python clients: {} already in {} (skipped)",
                    describe().join(", "),
                    venv.display()
                );
                return Ok(python);
            }
            Some(found) => println!(
                "python clients in {}: found {found:?}, pinning",
                venv.display()
            ),
            None => println!(
                "python clients in {}: not importable, installing",
                venv.display()
            ),
        }
    } else {
        let base = std::env::var("KMIRROR_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        println!("creating venv {} with {base}", venv.display());
        let status = Command::new(&base)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| format!("cannot run {base} (set KMIRROR_PYTHON to a Python 3): {e}"))?;
        if !status.success() {
            return Err(format!(
                "`{base} -m venv {}` failed ({status})",
                venv.display()
            ));
        }
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(describe())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !status.success() {
        return Err(format!(
            "pip install {} failed ({status})",
            describe().join(" ")
        ));
    }
    match venv_versions(&python) {
        Some(found) if found == pinned => Ok(python),
        other => Err(format!(
            "after pip install the venv reports {other:?}, expected {pinned:?}"
        )),
    }
}
