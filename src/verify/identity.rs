//! What was tested, as far as vnetbed knows it by itself: its version, the git revision of
//! the tree it runs from, the guest image's SHA-256 and the host tools' versions.

use std::path::Path;
use std::process::Command;

use super::summary::Identity;

/// The first line a command prints, if it runs.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The identity of a verify of `kernel`.
pub fn gather(kernel: Option<&Path>) -> Identity {
    let revision = first_line(
        "git",
        &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"],
    )
    .filter(|r| r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()));
    let kernel_sha256 = kernel.and_then(|k| {
        let k = k.to_str()?;
        first_line("sha256sum", &[k])?
            .split_whitespace()
            .next()
            .map(str::to_string)
    });
    let mut tools = std::collections::BTreeMap::new();
    for (name, args) in [("dnsmasq", ["--version"]), ("iperf3", ["--version"])] {
        if let Some(v) = first_line(name, &args) {
            tools.insert(name.to_string(), v);
        }
    }
    Identity {
        vnetbed_version: env!("CARGO_PKG_VERSION").into(),
        revision,
        kernel: kernel.map(|k| k.display().to_string()),
        kernel_sha256,
        tools,
        sut: None,
    }
}
