//! Checked invocations of `ip` from iproute2.
//!
//! Why `ip` and not a netlink crate: vnetbed has no async runtime, and the maintained netlink
//! crates (rtnetlink and friends) are built on tokio; the synchronous alternatives are thin or
//! unmaintained. The testbed changes links a handful of times per run, so the cost of a
//! process per change does not matter, while `ip` is what every operator already knows: each
//! failure carries the exact command and `ip`'s own stderr, and can be replayed by hand.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::error::{NetError, Result};
use super::preflight::find_program;

/// A located `ip` binary.
#[derive(Debug, Clone)]
pub struct Ip {
    program: PathBuf,
}

impl Ip {
    /// Find `ip` on PATH.
    pub fn locate() -> Result<Self> {
        let program = find_program("ip").ok_or(NetError::ProgramMissing {
            program: "ip",
            package: "iproute2",
        })?;
        Ok(Ip { program })
    }

    /// Run `ip <args>`; a non-zero exit becomes [`NetError::IpFailed`] with `ip`'s stderr.
    /// Returns stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let output = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| NetError::io(format!("cannot run {}", self.program.display()), e))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(NetError::IpFailed {
                args: args.join(" "),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// Run `ip -n <netns> <args>`.
    pub fn run_in(&self, netns: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", netns];
        all.extend_from_slice(args);
        self.run(&all)
    }
}
