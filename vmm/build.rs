//! Records which `virtio-queue` the build links: its version and where Cargo took it from,
//! read from the workspace's Cargo.lock (Cargo's resolved dependency graph), so that a run
//! of `--notify-model virtio-queue` names the crate it verified, including a local checkout
//! substituted with `[patch.crates-io]`.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let lock = find_lock(&manifest);
    let identity = match &lock {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| locked_package(&text, "virtio-queue"))
                .unwrap_or_else(|| "unknown (not in Cargo.lock)".to_string())
        }
        None => "unknown (no Cargo.lock)".to_string(),
    };
    println!("cargo:rustc-env=VNETBED_VIRTIO_QUEUE_VERSION={identity}");
}

/// The nearest Cargo.lock at or above the crate (the workspace's).
fn find_lock(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.is_file())
}

/// `VERSION (crates.io)`, `VERSION (path)` or `VERSION (git URL)` of package `name`.
fn locked_package(lock: &str, name: &str) -> Option<String> {
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                let l = l.trim();
                let rest = l.strip_prefix(key)?.trim_start().strip_prefix('=')?;
                Some(rest.trim().trim_matches('"').to_string())
            })
        };
        if field("name").as_deref() != Some(name) {
            continue;
        }
        let version = field("version")?;
        let source = match field("source") {
            None => "path".to_string(),
            Some(s) if s.starts_with("registry+") && s.contains("crates.io") => {
                "crates.io".to_string()
            }
            Some(s) if s.starts_with("sparse+") && s.contains("crates.io") => {
                "crates.io".to_string()
            }
            Some(s) => s,
        };
        return Some(format!("{version} ({source})"));
    }
    None
}
