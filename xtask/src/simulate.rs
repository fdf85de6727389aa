//! `cargo xtask simulate`: the deterministic cluster simulation
//! (`tests/sim`) in a release build, for sweeps larger than the test suite
//! runs and for replaying one seed with logs.
//!
//! ```text
//! cargo xtask simulate [--seed N | --from N --seeds COUNT] [--soak] [--log LEVEL]
//! ```

use std::process::Command;

use crate::Result;

/// Builds and runs `kmirror-sim` with `args`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "kmirror-sim",
            "--bin",
            "kmirror-sim",
            "--",
        ])
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the simulation failed ({status}); each failing seed is listed above with its replay command"
        ))
    }
}
