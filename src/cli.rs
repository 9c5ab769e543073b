//! The command-line interface: one subcommand per job, each argument struct in
//! `commands::<name>`.

use clap::{Parser, Subcommand};

/// vnetbed: reproduce lost-notification virtio-net bugs under load, and verify their fixes.
#[derive(Debug, Parser)]
#[command(name = "vnetbed", version, about)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a guest kernel in a KVM virtual machine.
    Run(crate::commands::run::RunArgs),
    /// The testbed network: namespace, bridge, taps, supervised dnsmasq.
    Net(crate::commands::net::NetArgs),
    /// Tell what this host can do: KVM, guest ring-0/ring-3 speed, tun, privileges, tools.
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Build guest images (`vnetbed image build probe`).
    Image(crate::commands::image::ImageArgs),
    /// Soak a guest under sustained iperf3 load with DHCP and stall monitoring; write the record and reports.
    Soak(crate::commands::soak::SoakArgs),
    /// Run the buggy notification model under load until the 2012 incident unfolds.
    Reproduce(crate::commands::soak::ReproduceArgs),
    /// A/B-verify a fix: the positive control must stall, the system under test must not (the main job).
    Verify(crate::commands::verify::VerifyArgs),
    /// Measure and print performance figures (see BENCHMARKS.md).
    Bench(crate::commands::bench::BenchArgs),
    /// Rebuild report.json, junit.xml and report.html from a run directory's timeline.jsonl.
    Report(crate::commands::report::ReportArgs),
}

/// Send `tracing` output to stderr, at a level set by `-v` or `RUST_LOG`.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
