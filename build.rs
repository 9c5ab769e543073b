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
    // Build again when the revision moves (HEAD, the branch it points to) or the tracked
    // sources change (the dirty flag). Only files that exist are watched: cargo takes a
    // missing one as changed on every build, which recompiled the whole crate each time
    // (`packed-refs` is absent from most working repositories). The index is not watched:
    // the `git status` above refreshes it on a fresh clone, which made the next build
    // (CI's `cargo test` after `cargo build`) compile everything again, and staging alone
    // never changes the dirty flag that the watched sources did not already change.
    let git_dir = git(&["-C", &root, "rev-parse", "--absolute-git-dir"]);
    if let Some(dir) = &git_dir {
        // `--git-path` names files in the common git directory, for a worktree too.
        let git_path = |name: &str| {
            git(&["-C", &root, "rev-parse", "--git-path", name]).map(|p| Path::new(&root).join(p))
        };
        let mut watched = vec![Path::new(dir).join("HEAD")];
        watched.extend(git_path("packed-refs"));
        // The branch's own file or, while the branch lives only in packed-refs (a fresh
        // clone), its folder: a commit creates the file there.
        if let Some(head_ref) = git(&["-C", &root, "symbolic-ref", "-q", "HEAD"]) {
            if let Some(file) = git_path(&head_ref) {
                match file.parent() {
                    Some(folder) if !file.exists() => watched.push(folder.to_path_buf()),
                    _ => watched.push(file),
                }
            }
        }
        for path in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
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
