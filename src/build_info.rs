//! What this binary is: its version and the git revision it was built from (`build.rs`), and
//! the first line of a tool's `--version`, for the identity of a run.

use std::process::Command;

/// The git revision the binary was built from (40 hex digits), or `unknown`.
pub const GIT_REVISION: &str = env!("VNETBED_GIT_REVISION");

/// Whether the working tree had uncommitted changes to tracked files at build time:
/// `clean`, `dirty` or `unknown`.
pub const GIT_DIRTY: &str = env!("VNETBED_GIT_DIRTY");

/// The revision, when known.
pub fn revision() -> Option<&'static str> {
    (GIT_REVISION != "unknown").then_some(GIT_REVISION)
}

/// Whether the build had uncommitted changes, when known.
pub fn dirty() -> Option<bool> {
    match GIT_DIRTY {
        "dirty" => Some(true),
        "clean" => Some(false),
        _ => None,
    }
}

/// `vnetbed 0.1.0 (git 1234abcd..., dirty)`.
pub fn version_line() -> String {
    let state = match dirty() {
        Some(true) => ", dirty",
        Some(false) => "",
        None => ", working tree unknown",
    };
    format!(
        "vnetbed {} (git {GIT_REVISION}{state})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The first non-empty line `program args...` prints (stdout, then stderr), if it runs.
pub fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}
