//! The load: back-to-back bounded runs of the real `iperf3` client from the testbed
//! namespace to the guest's server, so that a 48-hour soak is a sequence of ordinary runs.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::children::{in_netns, LineChild};
use super::parse::iperf_interval;

/// What load to drive (a closed set: `--load` takes exactly these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadKind {
    /// UDP host -> guest at `--rate` (fills the guest's rx ring: the lost-kick path).
    Udp,
    /// UDP host -> guest at `--rate` on average, sent in bursts of `--burst` datagrams
    /// back to back (iperf3 `-b RATE/N`): each burst can drain a short rx ring, and the gap
    /// after it lets the guest refill it, so the ring runs dry and is re-armed again and
    /// again (the lost-kick race's chances), whatever else the host is doing.
    UdpBurst,
    /// TCP host -> guest.
    Tcp,
    /// TCP guest -> host (`iperf3 -R`).
    TcpReverse,
    /// Alternate UDP, TCP and TCP reverse, one per run.
    Mixed,
    /// No load (DHCP and ping only).
    None,
}

impl std::str::FromStr for LoadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "udp" => LoadKind::Udp,
            "udp-burst" => LoadKind::UdpBurst,
            "tcp" => LoadKind::Tcp,
            "tcp-reverse" => LoadKind::TcpReverse,
            "mixed" => LoadKind::Mixed,
            "none" => LoadKind::None,
            _ => {
                return Err(format!(
                    "unknown load `{s}`: use udp, udp-burst, tcp, tcp-reverse, mixed or none"
                ))
            }
        })
    }
}

impl LoadKind {
    /// The name used in the record.
    pub fn name(self) -> &'static str {
        match self {
            LoadKind::Udp => "udp",
            LoadKind::UdpBurst => "udp-burst",
            LoadKind::Tcp => "tcp",
            LoadKind::TcpReverse => "tcp-reverse",
            LoadKind::Mixed => "mixed",
            LoadKind::None => "none",
        }
    }

    /// Whether the load is UDP into the guest (iperf3's client then reports what it sent,
    /// not what arrived).
    pub fn is_udp(self) -> bool {
        matches!(self, LoadKind::Udp | LoadKind::UdpBurst)
    }

    /// The kind of run number `run` (1-based).
    fn for_run(self, run: u64) -> LoadKind {
        match self {
            LoadKind::Mixed => {
                [LoadKind::Udp, LoadKind::Tcp, LoadKind::TcpReverse][(run as usize - 1) % 3]
            }
            other => other,
        }
    }
}

/// An iperf3 `-b` rate ("200M", "1G", "500k", "1000000") in bits/s; iperf3's rate suffixes
/// are decimal (k = 1000).
pub fn parse_rate_bps(rate: &str) -> Option<f64> {
    let rate = rate.trim();
    let (number, scale) = match rate.chars().last()? {
        'k' | 'K' => (&rate[..rate.len() - 1], 1e3),
        'm' | 'M' => (&rate[..rate.len() - 1], 1e6),
        'g' | 'G' => (&rate[..rate.len() - 1], 1e9),
        _ => (rate, 1.0),
    };
    let n: f64 = number.parse().ok()?;
    (n.is_finite() && n > 0.0).then_some(n * scale)
}

/// The throughput floor a soak checks when none is given: the load must flow. UDP: a
/// quarter of the target rate; TCP (no target): 10 Mbit/s; no load: no floor. Far below
/// what the probe reaches on the slowest machine measured (BENCHMARKS.md), so a busy machine
/// does not fail it, while a load that never reached the guest does.
pub fn default_floor_bps(kind: LoadKind, rate: &str) -> Option<f64> {
    const TCP_FLOOR_BPS: f64 = 10e6;
    match kind {
        LoadKind::None => None,
        LoadKind::Udp | LoadKind::UdpBurst => parse_rate_bps(rate).map(|r| r / 4.0),
        LoadKind::Mixed => {
            Some(parse_rate_bps(rate).map_or(TCP_FLOOR_BPS, |r| (r / 4.0).min(TCP_FLOOR_BPS)))
        }
        LoadKind::Tcp | LoadKind::TcpReverse => Some(TCP_FLOOR_BPS),
    }
}

/// What the load thread reports.
#[derive(Debug, Clone)]
pub enum LoadMsg {
    /// A run started.
    Started {
        /// Run number.
        run: u64,
        /// Its kind.
        kind: LoadKind,
    },
    /// One second of a run.
    Interval {
        /// Run number.
        run: u64,
        /// Host -> guest (true) or guest -> host.
        to_guest: bool,
        /// Bits per second.
        bps: f64,
        /// When it was read.
        at: Instant,
    },
    /// A run ended.
    Ended {
        /// Run number.
        run: u64,
        /// Exit status (None: killed).
        status: Option<i32>,
        /// The last lines it printed that were not intervals (its error, if it failed).
        tail: Vec<String>,
    },
}

/// Parameters of the load.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The namespace to run iperf3 in.
    pub netns: String,
    /// The guest's address.
    pub guest: String,
    /// Kind.
    pub kind: LoadKind,
    /// UDP target rate (iperf3 `-b`).
    pub rate: String,
    /// Length of each bounded run.
    pub run_length: Duration,
    /// Datagrams per burst of `udp-burst`.
    pub burst: u32,
}

/// The default `--burst`: 48 datagrams, more than a 32-entry rx ring holds, so a burst
/// drains it when the guest does not refill as fast as the datagrams arrive.
pub const DEFAULT_BURST: u32 = 48;

/// The most datagrams per burst (iperf3's own limit).
pub const MAX_BURST: u32 = 1000;

/// iperf3's pacing timer for `udp-burst`, in microseconds: how often the client may start
/// a burst (its default, 1000 us, would allow at most 1000 bursts per second).
const BURST_PACING_US: u32 = 100;

fn iperf_command(plan: &LoadPlan, kind: LoadKind) -> Command {
    let mut c = in_netns(&plan.netns, "iperf3");
    c.args([
        "-c",
        &plan.guest,
        "-p",
        "5201",
        "-i",
        "1",
        "--forceflush",
        "--connect-timeout",
        "3000",
    ]);
    c.args(["-t", &plan.run_length.as_secs().max(1).to_string()]);
    match kind {
        LoadKind::Udp => {
            c.args(["-u", "-b", &plan.rate, "-l", "1400"]);
        }
        LoadKind::UdpBurst => {
            let rate = format!("{}/{}", plan.rate, plan.burst);
            let pacing = BURST_PACING_US.to_string();
            c.args(["-u", "-b", &rate, "-l", "1400", "--pacing-timer", &pacing]);
        }
        LoadKind::TcpReverse => {
            c.arg("-R");
        }
        _ => {}
    }
    c
}

/// Run the load until `stop` is set; reports go to `tx`.
pub fn spawn(
    plan: LoadPlan,
    stop: Arc<AtomicBool>,
    tx: Sender<LoadMsg>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut run = 0u64;
        while !stop.load(Ordering::SeqCst) {
            run += 1;
            let kind = plan.kind.for_run(run);
            let to_guest = kind != LoadKind::TcpReverse;
            let _ = tx.send(LoadMsg::Started { run, kind });
            let started = Instant::now();
            let (mut child, lines) = match LineChild::spawn("iperf3", iperf_command(&plan, kind)) {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(LoadMsg::Ended {
                        run,
                        status: None,
                        tail: vec![format!("cannot start iperf3: {e}")],
                    });
                    return;
                }
            };
            // iperf3 has no overall time limit: after a stall its control connection can wait
            // forever. Each run gets its length plus a grace period, then it is stopped.
            let deadline = Instant::now() + plan.run_length + RUN_GRACE;
            let status = pump_run(&mut child, &lines, &stop, deadline, &tx, run, to_guest);
            // A run that failed at once (the guest's server is unreachable) must not spin.
            if started.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_secs(1));
            }
            let _ = tx.send(LoadMsg::Ended {
                run,
                status: status.0,
                tail: status.1,
            });
        }
    })
}

/// How long an iperf3 run may outlast its `-t` before it is stopped.
pub const RUN_GRACE: Duration = Duration::from_secs(15);

fn pump_run(
    child: &mut LineChild,
    lines: &Receiver<super::children::Line>,
    stop: &AtomicBool,
    deadline: Instant,
    tx: &Sender<LoadMsg>,
    run: u64,
    to_guest: bool,
) -> (Option<i32>, Vec<String>) {
    let mut tail: Vec<String> = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => match iperf_interval(&l.text) {
                Some(i) => {
                    let _ = tx.send(LoadMsg::Interval {
                        run,
                        to_guest,
                        bps: i.bps,
                        at: l.at,
                    });
                }
                None => {
                    tail.push(l.text);
                    if tail.len() > 8 {
                        tail.remove(0);
                    }
                }
            },
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            if Instant::now() > deadline {
                tail.push(format!(
                    "stopped: still running {} s after its planned end",
                    RUN_GRACE.as_secs()
                ));
            }
            child.stop(libc::SIGINT, Duration::from_secs(2));
            break;
        }
    }
    let status = child
        .stop(libc::SIGKILL, Duration::from_secs(1))
        .and_then(|s| s.code());
    (status, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_kinds_parse_and_mixed_rotates() {
        assert_eq!("udp".parse::<LoadKind>(), Ok(LoadKind::Udp));
        assert!("bogus"
            .parse::<LoadKind>()
            .unwrap_err()
            .contains("tcp-reverse"));
        let kinds: Vec<_> = (1..=4).map(|r| LoadKind::Mixed.for_run(r)).collect();
        assert_eq!(
            kinds,
            vec![
                LoadKind::Udp,
                LoadKind::Tcp,
                LoadKind::TcpReverse,
                LoadKind::Udp
            ]
        );
    }

    #[test]
    fn rates_parse_with_decimal_suffixes_and_floors_follow_the_load() {
        assert_eq!(parse_rate_bps("200M"), Some(200e6));
        assert_eq!(parse_rate_bps("1g"), Some(1e9));
        assert_eq!(parse_rate_bps("500k"), Some(500e3));
        assert_eq!(parse_rate_bps("1000000"), Some(1e6));
        for bad in ["", "M", "-5M", "fastM", "nan"] {
            assert_eq!(parse_rate_bps(bad), None, "{bad}");
        }
        assert_eq!(default_floor_bps(LoadKind::Udp, "200M"), Some(50e6));
        assert_eq!(default_floor_bps(LoadKind::Tcp, "200M"), Some(10e6));
        assert_eq!(default_floor_bps(LoadKind::Mixed, "200M"), Some(10e6));
        assert_eq!(default_floor_bps(LoadKind::None, "200M"), None);
    }

    #[test]
    fn udp_runs_use_rate_and_datagram_length() {
        let plan = LoadPlan {
            netns: "vnetbed-x".into(),
            guest: "198.18.0.10".into(),
            kind: LoadKind::Udp,
            rate: "200M".into(),
            run_length: Duration::from_secs(60),
            burst: 48,
        };
        let c = iperf_command(&plan, LoadKind::Udp);
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.starts_with("netns exec vnetbed-x iperf3 -c 198.18.0.10"),
            "{joined}"
        );
        assert!(
            joined.contains("-t 60") && joined.contains("-u -b 200M -l 1400"),
            "{joined}"
        );
        let r = iperf_command(&plan, LoadKind::TcpReverse);
        assert!(r.get_args().any(|a| a == "-R"));
        let b = iperf_command(&plan, LoadKind::UdpBurst);
        let joined: Vec<String> = b
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            joined
                .join(" ")
                .contains("-u -b 200M/48 -l 1400 --pacing-timer 100"),
            "{joined:?}"
        );
        assert!("udp-burst".parse::<LoadKind>().is_ok_and(LoadKind::is_udp));
    }
}
