//! `vnetbed bench`: measured figures for BENCHMARKS.md. Benchmarks print numbers; they never
//! pass or fail on speed.
//!
//! - `boot`: process start -> first serial byte, VMM memory (issue 2);
//! - `network`: boot -> DHCP bound and iperf3 both ways on vnetbed, QEMU microvm's
//!   virtio-net-device and QEMU q35's virtio-net-pci, next to a veth pair (issues 5, 11);
//! - `stall`: time to stall of the buggy model, fenced exposure and soak throughput next to a
//!   veth pair (issues 4 and 6);
//! - `sensitivity`: verify's control phase for each buggy model and mutant of the fix: caught
//!   or not, and the time to stall.
//!
//! Device-only frames/s (tap <-> rings with the test driver) is `cargo bench -p vmm`.

mod boot;
mod iperf;
mod network;
mod probe;
mod sensitivity;
mod stall;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vnetbed::report::percentile;

/// Arguments of `vnetbed bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: BenchKind,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Process start -> the test guest's first serial byte, and VMM RSS beyond guest memory.
    Boot {
        /// Number of boots.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 64)]
        mem: u64,
    },
    /// boot -> DHCP bound and iperf3 TCP/UDP both ways on vnetbed and QEMU microvm, next to a veth pair.
    Network(network::NetworkArgs),
    /// Time to stall of the buggy model, fenced exposure per minute, soak throughput next to a veth pair.
    Stall(Box<stall::StallArgs>),
    /// Verify's control phase for each buggy model and mutant of the fix: caught or not, time to stall.
    Sensitivity(Box<sensitivity::SensitivityArgs>),
}

/// Why a benchmark could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A system call or child process.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The test network.
    #[error("test network: {0}")]
    Net(#[from] vnetbed::net::NetError),
    /// The guest did not come up or went away.
    #[error("probe guest on {vmm}: {detail}")]
    Guest {
        /// Which VMM.
        vmm: String,
        /// What happened, with the console's last lines.
        detail: String,
    },
    /// iperf3 failed.
    #[error("iperf3 {test}: {detail}")]
    Iperf {
        /// Which test.
        test: String,
        /// Its error.
        detail: String,
    },
    /// The guest image.
    #[error(transparent)]
    Setup(#[from] crate::commands::soak::SetupError),
    /// A soak.
    #[error(transparent)]
    Soak(#[from] vnetbed::soak::SoakError),
    /// A measurement failed.
    #[error("{0}")]
    Measure(String),
    /// SIGINT or SIGTERM.
    #[error("interrupted; everything it set up was torn down")]
    Interrupted,
}

/// The probe guest's image, built (incrementally) if needed.
fn probe_image() -> Result<PathBuf, BenchError> {
    let paths = crate::commands::soak::build_image(crate::commands::image::ImageName::Probe)?;
    paths
        .into_iter()
        .next()
        .ok_or_else(|| BenchError::Measure("the probe image build gave no path".into()))
}

/// Summary statistics of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

/// Nearest-rank percentiles of `v` (the reports' [`percentile`]); NaN for an empty `v`.
pub fn summarize(v: &[f64]) -> Summary {
    let pick = |p: f64| percentile(v, p).unwrap_or(f64::NAN);
    Summary {
        min: pick(0.0),
        p50: pick(50.0),
        p90: pick(90.0),
        max: pick(100.0),
    }
}

/// Bits/s as whole Mbit/s, the unit of every bench table.
fn mbit(bps: f64) -> String {
    format!("{:.0} Mbit/s", bps / 1e6)
}

/// Run a benchmark; exit status 0, 1 when `sensitivity` found a model it did not catch, or 2
/// when it could not be measured.
pub fn main(args: BenchArgs) -> i32 {
    let result = match args.which {
        BenchKind::Boot { runs, mem } => boot::run(runs, mem).map_err(BenchError::Measure),
        BenchKind::Network(a) => network::run(&a),
        BenchKind::Stall(a) => stall::run(&a),
        BenchKind::Sensitivity(a) => match sensitivity::run(&a) {
            Ok(true) => Ok(()),
            Ok(false) => return 1,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vnetbed bench: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = summarize(&(1..=10).map(f64::from).collect::<Vec<_>>());
        assert_eq!((s.min, s.p50, s.p90, s.max), (1.0, 5.0, 9.0, 10.0));
        let one = summarize(&[3.0]);
        assert_eq!((one.min, one.p50, one.p90, one.max), (3.0, 3.0, 3.0, 3.0));
    }
}
