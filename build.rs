//! Records the git revision the binary was built from, and whether the working tree had
//! changes then (`dirty`), so that every record and verdict names the exact code that made
//! it. Outside a git checkout (a source tarball) both are `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let revision = git(&["-C", &root, "rev-parse", "HEAD"])
        .filter(|r| r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()));
    let dirty = revision.as_ref().and_then(|_| {
        git(&["-C", &root, "status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty())
    });
    println!(
        "cargo:rustc-env=VNETBED_GIT_REVISION={}",
        revision.as_deref().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=VNETBED_GIT_DIRTY={}",
        match dirty {
            Some(true) => "dirty",
            Some(false) => "clean",
            None => "unknown",
        }
    );
    // Build again when the revision moves (HEAD, the branch it points to, the index) or the
    // tracked sources change (the dirty flag).
    let git_dir = git(&["-C", &root, "rev-parse", "--absolute-git-dir"]);
    if let Some(dir) = &git_dir {
        for f in ["HEAD", "index", "packed-refs"] {
            println!("cargo:rerun-if-changed={dir}/{f}");
        }
        if let Some(head_ref) = git(&["-C", &root, "symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{head_ref}");
        }
    }
    for p in [
        "src",
        "vmm/src",
        "tests",
        "guest-images/probe/src",
        "Cargo.toml",
        "vmm/Cargo.toml",
        "Cargo.lock",
        "build.rs",
    ] {
        if Path::new(&root).join(p).exists() {
            println!("cargo:rerun-if-changed={root}/{p}");
        }
    }
}
