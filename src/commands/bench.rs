//! `vnetbed bench`: measured figures for BENCHMARKS.md. Benchmarks print numbers; they never
//! pass or fail on speed.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

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

/// Nearest-rank percentiles of `v` (which must not be empty).
pub fn summarize(mut v: Vec<f64>) -> Summary {
    v.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Summary {
        min: v[0],
        p50: pick(0.5),
        p90: pick(0.9),
        max: v[v.len() - 1],
    }
}

/// Spawn `cmd` and return the time until its first stdout byte, and its exit status.
fn time_to_first_byte(mut cmd: Command) -> std::io::Result<(Duration, Option<i32>)> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut b = [0u8; 1];
    let n = out.read(&mut b)?;
    let t = start.elapsed();
    std::io::copy(&mut out, &mut std::io::sink())?;
    let status = child.wait()?;
    if n == 0 {
        return Err(std::io::Error::other("the process printed nothing"));
    }
    Ok((t, status.code()))
}

fn boot(runs: usize, mem: u64) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let events: PathBuf =
        std::env::temp_dir().join(format!("vnetbed-bench-{}.jsonl", std::process::id()));
    let mut boot_ms = Vec::new();
    let mut spawn_ms = Vec::new();
    let mut rss_kib = Vec::new();
    for _ in 0..runs.max(1) {
        // Reference from the same run: the cost of spawning a process that prints at once.
        let mut echo = Command::new("/bin/echo");
        echo.arg("x");
        let (t, _) = time_to_first_byte(echo).map_err(|e| format!("echo: {e}"))?;
        spawn_ms.push(t.as_secs_f64() * 1e3);

        let mut cmd = Command::new(&exe);
        cmd.args([
            "run",
            "--kernel",
            "builtin:hello",
            "--mem",
            &mem.to_string(),
            "--events",
        ])
        .arg(&events);
        let (t, status) = time_to_first_byte(cmd).map_err(|e| format!("vnetbed run: {e}"))?;
        if status != Some(0) {
            return Err(format!("vnetbed run ended with status {status:?}"));
        }
        boot_ms.push(t.as_secs_f64() * 1e3);
        let text = std::fs::read_to_string(&events).map_err(|e| e.to_string())?;
        let rss = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "exit")
            .and_then(|v| v["vmm_rss_kib"].as_u64())
            .ok_or("no exit event with vmm_rss_kib")?;
        rss_kib.push(rss as f64);
    }
    let _ = std::fs::remove_file(&events);
    let b = summarize(boot_ms);
    let s = summarize(spawn_ms);
    let r = summarize(rss_kib);
    println!(
        "boot: process start -> first serial byte of the test guest ({runs} runs, --mem {mem})"
    );
    println!(
        "  vnetbed run        min {:.2} ms  p50 {:.2} ms  p90 {:.2} ms  max {:.2} ms",
        b.min, b.p50, b.p90, b.max
    );
    println!(
        "  reference /bin/echo min {:.2} ms  p50 {:.2} ms  p90 {:.2} ms  max {:.2} ms",
        s.min, s.p50, s.p90, s.max
    );
    println!("memory: VMM RSS beyond guest memory, at exit");
    println!(
        "  min {:.1} MiB  p50 {:.1} MiB  max {:.1} MiB",
        r.min / 1024.0,
        r.p50 / 1024.0,
        r.max / 1024.0
    );
    Ok(())
}

/// Run a benchmark; exit status 0, or 2 when it could not be measured.
pub fn main(args: BenchArgs) -> i32 {
    let result = match args.which {
        BenchKind::Boot { runs, mem } => boot(runs, mem),
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
        let s = summarize((1..=10).map(f64::from).collect());
        assert_eq!((s.min, s.p50, s.p90, s.max), (1.0, 5.0, 9.0, 10.0));
        let one = summarize(vec![3.0]);
        assert_eq!((one.min, one.p50, one.p90, one.max), (3.0, 3.0, 3.0, 3.0));
    }
}
