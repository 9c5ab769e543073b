//! `vnetbed bench network`: the probe guest's network on each system under test (by default
//! vnetbed on its own queue and on rust-vmm's virtio-queue, QEMU microvm's
//! virtio-net-device and QEMU q35's virtio-net-pci; or the `--sut` specs given), next to a
//! veth pair between two namespaces, all from one run:
//! - boot -> DHCP bound (process start to the `bound` line; and the guest's own clock);
//! - iperf3 TCP and UDP, both directions, with the real `iperf3` client in the testbed's
//!   namespace and the probe's iperf3 server (or `iperf3 -s` on the veth pair's far side).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use vnetbed::net::veth::{VethPair, VETH_B_ADDRESS};
use vnetbed::net::{Testbed, TestbedConfig};

use super::iperf::{self, Outcome, Test};
use super::probe::{setup_name, ProbeGuest};
use super::{probe_image, summarize, BenchError};
use vnetbed::sut::SutSpec;

/// Arguments of `vnetbed bench network`.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Seconds of each iperf3 test.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Boots per VMM for boot -> DHCP bound.
    #[arg(long, default_value_t = 5)]
    pub boots: usize,
    /// UDP target rate (iperf3 -b), both directions.
    #[arg(long, default_value = "200M", value_parser = crate::commands::args::rate)]
    pub udp_rate: crate::commands::args::Rate,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A system under test to measure (repeatable), a spec as for `soak --sut`. Default:
    /// vnetbed, vnetbed:virtio-queue, qemu,machine=microvm,device=virtio-net-device and qemu
    /// (q35, virtio-net-pci).
    #[arg(long = "sut", value_name = "SPEC", value_parser = vnetbed::sut::parse_arg)]
    pub suts: Vec<SutSpec>,
    /// More words for the probe's command line on every system under test (e.g.
    /// `probe.virtio_pci=modern` to drive a transitional function's modern interface, or
    /// `probe.msix=0`); the tables name them next to each setup.
    #[arg(long, value_name = "WORDS")]
    pub guest_cmdline: Option<String>,
}

/// The systems measured without `--sut`.
fn default_suts() -> Vec<SutSpec> {
    [
        "vnetbed",
        "vnetbed:virtio-queue",
        "qemu,machine=microvm,device=virtio-net-device",
        "qemu",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// One row of the throughput table.
struct Row {
    setup: String,
    cells: Vec<Result<Outcome, String>>,
}

/// Boot -> bound of one VMM.
struct Boots {
    vmm: String,
    wall_ms: Vec<f64>,
    guest_ms: Vec<f64>,
}

fn all_tests(netns: &str, server: &str, args: &NetworkArgs) -> Vec<Result<Outcome, String>> {
    Test::ALL
        .iter()
        .map(|&t| {
            if vnetbed::soak::stop_signal().is_some() {
                return Err("interrupted".to_string());
            }
            let r = iperf::run(netns, server, t, args.seconds, &args.udp_rate.text);
            eprintln!(
                "  {:<24} {}",
                t.label("server"),
                cell(&r.as_ref().map_err(|e| e.to_string()).copied())
            );
            r.map_err(|e| e.to_string())
        })
        .collect()
}

fn veth_reference(args: &NetworkArgs) -> Result<Row, BenchError> {
    eprintln!("veth pair between two namespaces (reference)");
    let pair = VethPair::up(&format!("bv{}", std::process::id() % 10_000))?;
    let server = iperf::Server::start(&pair.netns_b)?;
    let cells = all_tests(&pair.netns_a, VETH_B_ADDRESS, args);
    drop(server);
    drop(pair);
    Ok(Row {
        setup: "veth pair, two netns (reference)".into(),
        cells,
    })
}

fn probe_on(
    sut: &SutSpec,
    args: &NetworkArgs,
    image: &std::path::Path,
) -> Result<(Row, Boots), BenchError> {
    let name = match &args.guest_cmdline {
        Some(words) => format!("{} [{words}]", setup_name(sut)),
        None => setup_name(sut),
    };
    eprintln!("probe guest on {name}");
    let testbed = Testbed::up(TestbedConfig {
        name: format!("bn{}", std::process::id() % 100_000),
        taps: 1,
        ..TestbedConfig::default()
    })?;
    // A user's vhost-user backend's port, on the bridge for every boot; given back with the
    // testbed.
    if let SutSpec::VhostUser {
        port: Some(port), ..
    } = sut
    {
        testbed.borrow_link(port)?;
    }
    let netns = testbed.info().netns.clone();
    let mut boots = Boots {
        vmm: name.clone(),
        wall_ms: Vec::new(),
        guest_ms: Vec::new(),
    };
    let mut cells = Vec::new();
    for i in 0..args.boots.max(1) {
        let mut guest = ProbeGuest::start(sut, image, &testbed, args.guest_cmdline.as_deref())?;
        let bound = guest.wait_ready(Duration::from_secs(30))?;
        eprintln!(
            "  boot {}: bound {} after {:.1} ms (guest clock {:.1} ms)",
            i + 1,
            bound.address,
            bound.wall.as_secs_f64() * 1e3,
            bound.guest.as_secs_f64() * 1e3
        );
        boots.wall_ms.push(bound.wall.as_secs_f64() * 1e3);
        boots.guest_ms.push(bound.guest.as_secs_f64() * 1e3);
        if i == 0 {
            cells = all_tests(&netns, &bound.address, args);
        }
        guest.stop();
        if vnetbed::soak::stop_signal().is_some() {
            return Err(BenchError::Interrupted);
        }
    }
    Ok((
        Row {
            setup: format!("probe guest on {name}"),
            cells,
        },
        boots,
    ))
}

fn cell(r: &Result<Outcome, String>) -> String {
    match r {
        Ok(o) => o.to_string(),
        Err(_) => "failed".into(),
    }
}

fn cell_json(r: &Result<Outcome, String>) -> serde_json::Value {
    match r {
        Ok(o) => json!({"received_bps": o.received_bps, "lost_percent": o.lost_percent}),
        Err(e) => json!({"error": e}),
    }
}

/// Run the benchmark and print its tables.
pub fn run(args: &NetworkArgs) -> Result<(), BenchError> {
    vnetbed::soak::install_stop_handlers();
    let image = probe_image()?;
    let mut rows = vec![veth_reference(args)?];
    let mut boots = Vec::new();
    let suts = if args.suts.is_empty() {
        default_suts()
    } else {
        args.suts.clone()
    };
    for sut in &suts {
        if vnetbed::soak::stop_signal().is_some() {
            return Err(BenchError::Interrupted);
        }
        let name = setup_name(sut);
        if let Err(e) = sut.check() {
            outln!("{name}: not measured: {e}");
            continue;
        }
        // A VMM that cannot be measured leaves its row failed; the other rows still print.
        match probe_on(sut, args, &image) {
            Ok((row, b)) => {
                rows.push(row);
                boots.push(b);
            }
            Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
            Err(e) => {
                eprintln!("{e}");
                rows.push(Row {
                    setup: format!("probe guest on {name}"),
                    cells: Test::ALL.iter().map(|_| Err(e.to_string())).collect(),
                });
            }
        }
    }

    outln!();
    outln!(
        "boot -> DHCP bound ({} boots each; process start -> the guest's `bound` line read by the host; guest clock from its first instruction)",
        args.boots.max(1)
    );
    outln!("| VMM | min | p50 | p90 | max | guest clock p50 |");
    outln!("|---|---|---|---|---|---|");
    for b in &boots {
        let w = summarize(&b.wall_ms);
        let g = summarize(&b.guest_ms);
        outln!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            b.vmm,
            w.min,
            w.p50,
            w.p90,
            w.max,
            g.p50
        );
    }
    outln!();
    outln!(
        "iperf3, {} s per test, UDP -b {} -l 1400; \"to\" = client in the testbed namespace -> server (the guest, or the veth pair's far side); received rate",
        args.seconds, args.udp_rate.text
    );
    outln!("| setup | TCP to | TCP from (-R) | UDP to | UDP from (-R) |");
    outln!("|---|---|---|---|---|");
    let mut failures = Vec::new();
    for row in &rows {
        let cells: Vec<String> = row.cells.iter().map(cell).collect();
        outln!("| {} | {} |", row.setup, cells.join(" | "));
        let errors: Vec<&String> = row.cells.iter().filter_map(|c| c.as_ref().err()).collect();
        if !errors.is_empty()
            && errors.len() == row.cells.len()
            && errors.iter().all(|e| *e == errors[0])
        {
            failures.push(format!("{}: {}", row.setup, errors[0]));
            continue;
        }
        for (t, c) in Test::ALL.iter().zip(&row.cells) {
            if let Err(e) = c {
                failures.push(format!("{} {}: {e}", row.setup, t.label("server")));
            }
        }
    }
    for f in &failures {
        outln!("failed: {f}");
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "schema": "vnetbed.bench.network/1",
            "seconds": args.seconds,
            "udp_rate": args.udp_rate.text,
            "boot_to_bound_ms": boots.iter().map(|b| json!({
                "vmm": b.vmm, "wall": b.wall_ms, "guest_clock": b.guest_ms})).collect::<Vec<_>>(),
            "iperf3": rows.iter().map(|r| json!({
                "setup": r.setup,
                "tcp_to": cell_json(&r.cells[0]),
                "tcp_from": cell_json(&r.cells[1]),
                "udp_to": cell_json(&r.cells[2]),
                "udp_from": cell_json(&r.cells[3]),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, format!("{doc:#}\n")).map_err(|e| BenchError::Io {
            what: format!("write {}", path.display()),
            source: e,
        })?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(BenchError::Measure(format!(
            "{} measurement(s) failed",
            failures.len()
        )))
    }
}
