//! `vnetbed image build <name>`: build a guest image and print its path(s) as the last
//! line(s): `probe` prints the probe ELF; `linux` prints the kernel, then the initramfs.
//!
//! Each recipe lives in one place (`scripts/build-probe.sh`, `guest-images/linux/build.sh`);
//! this command runs it from the
//! vnetbed source tree: `--source-dir`, else `$VNETBED_SOURCE_DIR`, else the tree this
//! binary was compiled from.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, Subcommand, ValueEnum};

/// Environment variable naming the vnetbed source tree.
pub const SOURCE_DIR_ENV: &str = "VNETBED_SOURCE_DIR";

/// Arguments of `vnetbed image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// What to do with images.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// `vnetbed image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a guest image (incrementally) and print its absolute path as the last line.
    Build(BuildArgs),
}

/// Arguments of `vnetbed image build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image to build.
    #[arg(value_enum)]
    pub image: ImageName,
    /// The vnetbed source tree (default: $VNETBED_SOURCE_DIR, else the tree this binary
    /// was built from).
    #[arg(long, value_name = "DIR")]
    pub source_dir: Option<PathBuf>,
}

/// Buildable images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageName {
    /// The no_std probe guest (guest-images/probe).
    Probe,
    /// A Debian cloud kernel and an initramfs from Debian packages (guest-images/linux).
    Linux,
}

impl ImageName {
    fn script(self) -> &'static str {
        match self {
            ImageName::Probe => "scripts/build-probe.sh",
            ImageName::Linux => "guest-images/linux/build.sh",
        }
    }

    /// How many files the build prints (its last lines).
    fn outputs(self) -> usize {
        match self {
            ImageName::Probe => 1,
            ImageName::Linux => 2,
        }
    }
}

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The build script is not where the source tree should have it.
    #[error(
        "cannot find {script}: is {dir} a vnetbed source tree? Pass --source-dir DIR or set \
         {SOURCE_DIR_ENV}=DIR to the checkout that has guest-images/"
    )]
    ScriptMissing {
        /// The script's expected path.
        script: PathBuf,
        /// The source tree searched.
        dir: PathBuf,
    },
    /// The build script could not be started.
    #[error("cannot run {script}: {source} (is bash installed?)")]
    Spawn {
        /// The script.
        script: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The build failed; its output above says why.
    #[error("{script} failed with {status}; see the build output above")]
    BuildFailed {
        /// The script.
        script: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The build claimed success but the image it named does not exist.
    #[error("{script} succeeded but printed `{printed}`, which is not an image file")]
    NoImage {
        /// The script.
        script: PathBuf,
        /// Its last output line.
        printed: String,
    },
}

/// Run `vnetbed image`; returns the exit status.
pub fn main(args: ImageArgs) -> i32 {
    match args.command {
        ImageCommand::Build(build_args) => match build(&build_args) {
            Ok(images) => {
                for image in images {
                    outln!("{}", image.display());
                }
                0
            }
            Err(error) => {
                eprintln!("vnetbed image build: {error}");
                1
            }
        },
    }
}

/// The source tree to build from.
pub fn source_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(SOURCE_DIR_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Build the image; returns its absolute path(s). Build output goes to stderr.
pub fn build(args: &BuildArgs) -> Result<Vec<PathBuf>, ImageError> {
    let dir = source_dir(args.source_dir.as_deref());
    let script = dir.join(args.image.script());
    if !script.is_file() {
        return Err(ImageError::ScriptMissing { script, dir });
    }
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| ImageError::Spawn {
            script: script.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ImageError::BuildFailed {
            script,
            status: output.status,
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let n = args.image.outputs();
    let last = &lines[lines.len().saturating_sub(n)..];
    let mut images = Vec::new();
    for printed in last {
        let image = PathBuf::from(printed.trim());
        if !image.is_absolute() || !image.is_file() {
            return Err(ImageError::NoImage {
                script,
                printed: printed.to_string(),
            });
        }
        images.push(image);
    }
    if images.len() != n {
        return Err(ImageError::NoImage {
            script,
            printed: stdout.trim().to_string(),
        });
    }
    Ok(images)
}
