//! One bounded run of the real `iperf3` client with `-J`, reduced to the figures a benchmark
//! table needs.

use serde_json::Value;
use vnetbed::soak::children::in_netns;
use vnetbed::soak::own_process_group;

use super::BenchError;

/// One iperf3 test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// TCP, client -> server.
    Tcp,
    /// TCP, server -> client (`-R`).
    TcpReverse,
    /// UDP at the given rate, client -> server, 1400-byte datagrams.
    Udp,
    /// UDP, server -> client (`-R`).
    UdpReverse,
}

impl Test {
    /// All four, in table order.
    pub const ALL: [Test; 4] = [Test::Tcp, Test::TcpReverse, Test::Udp, Test::UdpReverse];

    /// Label for tables, with `to`/`from` naming the server side.
    pub fn label(self, server: &str) -> String {
        match self {
            Test::Tcp => format!("TCP to {server}"),
            Test::TcpReverse => format!("TCP from {server}"),
            Test::Udp => format!("UDP to {server}"),
            Test::UdpReverse => format!("UDP from {server}"),
        }
    }

    fn args(self, rate: &str) -> Vec<String> {
        let udp = |r: bool| {
            let mut a = vec![
                "-u".into(),
                "-b".into(),
                rate.into(),
                "-l".into(),
                "1400".into(),
            ];
            if r {
                a.push("-R".into());
            }
            a
        };
        match self {
            Test::Tcp => vec![],
            Test::TcpReverse => vec!["-R".into()],
            Test::Udp => udp(false),
            Test::UdpReverse => udp(true),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Bits/s the receiver got (for UDP: sent minus lost).
    pub received_bps: f64,
    /// UDP datagrams lost, in percent (None for TCP).
    pub lost_percent: Option<f64>,
}

impl std::fmt::Display for Outcome {
    /// `1747 Mbit/s`, with `(0.05 % lost)` for UDP.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::mbit(self.received_bps))?;
        match self.lost_percent {
            Some(l) => write!(f, " ({l:.2} % lost)"),
            None => Ok(()),
        }
    }
}

/// Run `iperf3 -c server -J -t seconds` from `netns`; `rate` is the UDP target rate. A
/// client that has not ended 30 s after its test time is a failed measurement.
pub fn run(
    netns: &str,
    server: &str,
    test: Test,
    seconds: u64,
    rate: &str,
) -> Result<Outcome, BenchError> {
    let mut cmd = in_netns(netns, "timeout");
    cmd.arg((seconds + 30).to_string());
    cmd.args(["iperf3", "-c", server, "-J", "--connect-timeout", "3000"]);
    cmd.args(["-t", &seconds.to_string()]);
    cmd.args(test.args(rate));
    own_process_group(&mut cmd);
    let out = cmd.output().map_err(|e| BenchError::Io {
        what: "run iperf3".into(),
        source: e,
    })?;
    if out.status.code() == Some(124) {
        return Err(BenchError::Iperf {
            test: format!("{test:?}"),
            detail: format!("the client never ended within {} s", seconds + 30),
        });
    }
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| BenchError::Iperf {
        test: format!("{test:?}"),
        detail: format!(
            "no JSON report ({e}); exit {}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })?;
    if let Some(err) = report.get("error") {
        return Err(BenchError::Iperf {
            test: format!("{test:?}"),
            detail: err.to_string(),
        });
    }
    outcome(&report, test).ok_or_else(|| BenchError::Iperf {
        test: format!("{test:?}"),
        detail: format!("the report has no end summary: {}", report["end"]),
    })
}

/// The figures of a `-J` report.
fn outcome(report: &Value, test: Test) -> Option<Outcome> {
    let end = &report["end"];
    match test {
        Test::Tcp | Test::TcpReverse => Some(Outcome {
            received_bps: end["sum_received"]["bits_per_second"].as_f64()?,
            lost_percent: None,
        }),
        Test::Udp | Test::UdpReverse => {
            // iperf3 >= 3.13 has a receiver-side sum; older ones one sum with the sender's
            // rate and the receiver's loss.
            let lost = end["sum"]["lost_percent"]
                .as_f64()
                .or_else(|| end["sum_received"]["lost_percent"].as_f64())?;
            let received = match end["sum_received"]["bits_per_second"].as_f64() {
                Some(bps) => bps,
                None => end["sum"]["bits_per_second"].as_f64()? * (1.0 - lost / 100.0),
            };
            Some(Outcome {
                received_bps: received,
                lost_percent: Some(lost),
            })
        }
    }
}

/// `iperf3 -s` in `netns`, until dropped.
pub struct Server {
    child: vnetbed::soak::children::LineChild,
}

impl Server {
    /// Start a server and wait until it listens.
    pub fn start(netns: &str) -> Result<Server, BenchError> {
        let mut cmd = in_netns(netns, "iperf3");
        cmd.args(["-s", "--forceflush"]);
        own_process_group(&mut cmd);
        let (child, lines) =
            vnetbed::soak::children::LineChild::spawn("iperf3 -s", cmd).map_err(|e| {
                BenchError::Io {
                    what: "start iperf3 -s".into(),
                    source: e,
                }
            })?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(l) = lines.recv_timeout(std::time::Duration::from_millis(100)) {
                if l.text.contains("Server listening") {
                    // Keep draining its output so that it never blocks on a full pipe.
                    std::thread::spawn(move || while lines.recv().is_ok() {});
                    return Ok(Server { child });
                }
            }
        }
        Err(BenchError::Iperf {
            test: "server".into(),
            detail: "iperf3 -s did not report listening within 5 s".into(),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child
            .stop(libc::SIGTERM, std::time::Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_outcome_takes_the_receivers_view() {
        let old =
            serde_json::json!({"end": {"sum": {"bits_per_second": 200e6, "lost_percent": 10.0}}});
        let o = outcome(&old, Test::Udp).unwrap();
        assert!((o.received_bps - 180e6).abs() < 1.0);
        assert_eq!(o.lost_percent, Some(10.0));
        let new = serde_json::json!({"end": {"sum": {"bits_per_second": 200e6, "lost_percent": 1.0},
            "sum_received": {"bits_per_second": 150e6}}});
        assert_eq!(outcome(&new, Test::UdpReverse).unwrap().received_bps, 150e6);
        let tcp = serde_json::json!({"end": {"sum_received": {"bits_per_second": 1e9}}});
        assert_eq!(outcome(&tcp, Test::Tcp).unwrap().received_bps, 1e9);
        assert!(outcome(&serde_json::json!({}), Test::Tcp).is_none());
    }
}
