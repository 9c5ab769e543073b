//! `vnetbed run`: boot a guest.

use clap::Args;

/// Arguments of `vnetbed run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest kernel: an ELF64 (vmlinux-style) or a bzImage.
    #[arg(long)]
    pub kernel: std::path::PathBuf,
}

/// Boot the guest; returns the exit status.
pub fn main(_args: RunArgs) -> i32 {
    eprintln!("vnetbed run: not implemented yet");
    2
}
