//! `cargo xtask dist`: builds a fully static `x86_64-unknown-linux-musl`
//! release binary of `kmirror` and checks that it is static.
//!
//! Steps, each skipped when already done:
//!
//! 1. `rustup target add x86_64-unknown-linux-musl` unless
//!    `rustup target list --installed` lists it.
//! 2. A musl C compiler for the C code in the dependency tree (`zstd-sys`
//!    and `ring` build C through the `cc` crate): `musl-gcc` from Debian's
//!    `musl-tools`. When it is missing it is installed with `apt-get`
//!    (as `.ci/run` installs ZooKeeper) if we run as root or passwordless
//!    `sudo` works; otherwise the command fails saying what to run.
//!    `CC_x86_64_unknown_linux_musl=musl-gcc` is set for the build unless
//!    the caller already chose a compiler for the target.
//! 3. `cargo build --profile dist --locked --target x86_64-unknown-linux-musl
//!    -p kmirror-cli --bin kmirror`. The `dist` profile of the root
//!    `Cargo.toml` inherits `release` and adds fat LTO, one codegen unit and
//!    stripping; `panic` stays `unwind` for the panic hook of
//!    `crates/cli/src/exit.rs`.
//! 4. The binary is copied to `<target dir>/dist/kmirror` and verified:
//!    `file` must say "statically linked" or "static-pie linked", `ldd` must
//!    say "not a dynamic executable" or "statically linked", and
//!    `kmirror --version` must run. Its size is printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::json::Json;
use crate::{Result, paths};

/// The Rust target the distribution binary is built for.
const TARGET: &str = "x86_64-unknown-linux-musl";

/// The cargo profile of the build (defined in the root `Cargo.toml`).
const PROFILE: &str = "dist";

/// The musl C compiler wrapper of Debian's `musl-tools`.
const MUSL_CC: &str = "musl-gcc";

/// The features of the shipped binary: jemalloc as the allocator (musl's
/// own cost the slow path 2.3-2.8 times glibc's CPU; docs/performance.md).
pub(crate) const DIST_FEATURES: &str = "jemalloc";

/// The `cc` crate's per-target compiler variable for [`TARGET`].
const CC_VAR: &str = "CC_x86_64_unknown_linux_musl";

/// What to run when `musl-gcc` is missing and we cannot install it.
const INSTALL_HINT: &str = "sudo apt-get install -y musl-tools";

/// Runs `cargo xtask dist`.
pub(crate) fn run() -> Result<()> {
    let root = paths::workspace_root();
    ensure_rust_target()?;
    let cc = musl_cc_env()?;
    let target_dir = target_dir(&root)?;

    let started = Instant::now();
    build(&root, cc.as_deref())?;
    let elapsed = started.elapsed();
    println!(
        "dist: build finished in {:.0} s ({}m{:02}s)",
        elapsed.as_secs_f64(),
        elapsed.as_secs() / 60,
        elapsed.as_secs() % 60
    );

    let built = target_dir.join(TARGET).join(PROFILE).join("kmirror");
    if !built.is_file() {
        return Err(format!(
            "cargo reported success but {} does not exist",
            built.display()
        ));
    }
    let out_dir = target_dir.join("dist");
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let dist = out_dir.join("kmirror");
    fs::copy(&built, &dist)
        .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), dist.display()))?;

    verify_static(&dist)?;
    let size = fs::metadata(&dist)
        .map_err(|e| format!("cannot stat {}: {e}", dist.display()))?
        .len();
    let mib = size as f64 / (1024.0 * 1024.0);
    println!("dist: size: {size} bytes ({mib:.2} MiB)");
    let version = run_version(&dist)?;
    println!("dist: kmirror --version: {version}");
    println!("dist: {}", dist.display());
    Ok(())
}

/// Builds `kmirror` for the musl target with cargo profile `profile`
/// (`release`, or `dist` as shipped) without copying or verifying it, for
/// measurements next to the glibc build (`cargo xtask replay --builds`);
/// returns the executable's path.
pub(crate) fn build_musl(profile: &str, features: &[&str]) -> Result<PathBuf> {
    let root = paths::workspace_root();
    ensure_rust_target()?;
    let cc = musl_cc_env()?;
    let target_dir = target_dir(&root)?;
    let joined = features.join(",");
    let mut args = vec![
        "build",
        "--profile",
        profile,
        "--locked",
        "--target",
        TARGET,
        "-p",
        "kmirror-cli",
        "--bin",
        "kmirror",
    ];
    if !features.is_empty() {
        args.extend(["--features", &joined]);
    }
    let mut command = Command::new("cargo");
    command.current_dir(&root).args(&args).stdin(Stdio::null());
    if let Some(cc) = cc.as_deref() {
        command.env(CC_VAR, cc);
    }
    println!(
        "building the musl {profile} binary: cargo {}",
        args.join(" ")
    );
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build for {TARGET} failed ({status})"));
    }
    let built = target_dir.join(TARGET).join(profile).join("kmirror");
    if built.is_file() {
        Ok(built)
    } else {
        Err(format!("no {} after the build", built.display()))
    }
}

/// Adds the musl target to the active toolchain unless it is installed.
fn ensure_rust_target() -> Result<()> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            format!(
                "cannot run `rustup target list --installed` ({e}); \
                 without rustup, install the {TARGET} standard library yourself"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "`rustup target list --installed` failed ({})",
            output.status
        ));
    }
    let installed = String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line.trim() == TARGET);
    if installed {
        println!("dist: rustup target {TARGET} is installed");
        return Ok(());
    }
    println!("dist: rustup target add {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run `rustup target add {TARGET}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`rustup target add {TARGET}` failed ({status})"))
    }
}

/// The value to give [`CC_VAR`] for the build, or `None` when the caller
/// already chose a C compiler for the target. Installs `musl-tools` when
/// `musl-gcc` is missing and we may.
fn musl_cc_env() -> Result<Option<String>> {
    for var in [CC_VAR, "CC_x86_64-unknown-linux-musl", "TARGET_CC"] {
        if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            println!(
                "dist: using the C compiler {var}={}",
                value.to_string_lossy()
            );
            return Ok(None);
        }
    }
    if let Some(path) = find_in_path(MUSL_CC) {
        println!("dist: musl C compiler: {}", path.display());
        return Ok(Some(MUSL_CC.to_owned()));
    }
    install_musl_tools()?;
    match find_in_path(MUSL_CC) {
        Some(path) => {
            println!("dist: musl C compiler: {}", path.display());
            Ok(Some(MUSL_CC.to_owned()))
        }
        None => Err(format!(
            "installed musl-tools but `{MUSL_CC}` is still not on PATH; \
             set {CC_VAR} to a musl C compiler"
        )),
    }
}

/// Installs Debian's `musl-tools` with apt-get, directly as root or through
/// passwordless sudo, the way `.ci/run` installs ZooKeeper.
fn install_musl_tools() -> Result<()> {
    let missing = format!(
        "`{MUSL_CC}` is missing: the C code of the dependencies (zstd, ring) needs a musl C \
         compiler for {TARGET}. Install it with `{INSTALL_HINT}` (Debian/Ubuntu), \
         or set {CC_VAR} to another musl C compiler, then rerun `cargo xtask dist`"
    );
    if find_in_path("apt-get").is_none() {
        return Err(missing);
    }
    let sudo: &[&str] = if is_root() {
        &[]
    } else if passwordless_sudo() {
        &["sudo", "-n"]
    } else {
        return Err(missing);
    };
    let apt = |args: &[&str]| -> Result<()> {
        let mut argv: Vec<&str> = sudo.to_vec();
        argv.push("apt-get");
        argv.extend_from_slice(args);
        println!("dist: {}", argv.join(" "));
        let status = Command::new(argv[0])
            .args(&argv[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", argv.join(" ")))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status}). {missing}", argv.join(" ")))
        }
    };
    println!("dist: `{MUSL_CC}` is missing; installing musl-tools");
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "musl-tools"])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn passwordless_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first executable file called `name` in a directory of `PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Cargo's target directory for the workspace (honours `CARGO_TARGET_DIR`
/// and `build.target-dir`).
fn target_dir(root: &Path) -> Result<PathBuf> {
    let output = Command::new("cargo")
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed ({})", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let metadata = Json::parse(&text).map_err(|e| format!("cannot parse cargo metadata: {e}"))?;
    metadata
        .get("target_directory")
        .and_then(Json::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata has no target_directory".to_owned())
}

/// Runs the release build for [`TARGET`] with the [`PROFILE`] profile.
fn build(root: &Path, cc: Option<&str>) -> Result<()> {
    let args = [
        "build",
        "--profile",
        PROFILE,
        "--locked",
        "--target",
        TARGET,
        "-p",
        "kmirror-cli",
        "--bin",
        "kmirror",
        "--features",
        DIST_FEATURES,
    ];
    let mut command = Command::new("cargo");
    command.current_dir(root).args(args).stdin(Stdio::null());
    let mut shown = String::new();
    if let Some(cc) = cc {
        command.env(CC_VAR, cc);
        shown = format!("{CC_VAR}={cc} ");
    }
    println!("dist: {shown}cargo {}", args.join(" "));
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build for {TARGET} failed ({status})"))
    }
}

/// Runs `program args... path` and returns its stdout and stderr together,
/// whatever its exit status (`ldd` exits 1 on a static binary).
fn tool_output(program: &str, args: &[&str], path: &Path) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run `{program}` to verify the binary ({e}); install it and rerun")
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(text.trim().to_owned())
}

/// Fails unless `file` and `ldd` both call the binary static.
fn verify_static(path: &Path) -> Result<()> {
    let file = tool_output("file", &[], path)?;
    println!("dist: file: {file}");
    if !(file.contains("statically linked") || file.contains("static-pie linked")) {
        return Err(format!(
            "{} is not a static executable: `file` says {file:?} \
             (expected \"statically linked\" or \"static-pie linked\")",
            path.display()
        ));
    }
    let ldd = tool_output("ldd", &[], path)?;
    println!("dist: ldd: {ldd}");
    if !(ldd.contains("not a dynamic executable") || ldd.contains("statically linked")) {
        return Err(format!(
            "{} is not a static executable: `ldd` says {ldd:?} \
             (expected \"not a dynamic executable\" or \"statically linked\")",
            path.display()
        ));
    }
    println!("dist: verified: statically linked");
    Ok(())
}

/// The first line of `kmirror --version` from the built binary.
fn run_version(path: &Path) -> Result<String> {
    let output = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", path.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !stdout.is_empty() {
        Ok(stdout)
    } else {
        Err(format!(
            "{} --version failed ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
