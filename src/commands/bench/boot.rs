//! `vnetbed bench boot`: process start -> the test guest's first serial byte, and the VMM's
//! memory beyond guest RAM, next to the cost of spawning `/bin/echo` in the same run.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::summarize;

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

/// Measure `runs` boots of `builtin:hello` with `mem` MiB.
pub fn run(runs: usize, mem: u64) -> Result<(), String> {
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

        let mut cmd = vnetbed::self_command().map_err(|e| e.to_string())?;
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
    let b = summarize(&boot_ms);
    let s = summarize(&spawn_ms);
    let r = summarize(&rss_kib);
    outln!("boot: process start -> first serial byte of the test guest ({runs} runs, --mem {mem})");
    outln!(
        "  vnetbed run        min {:.2} ms  p50 {:.2} ms  p90 {:.2} ms  max {:.2} ms",
        b.min,
        b.p50,
        b.p90,
        b.max
    );
    outln!(
        "  reference /bin/echo min {:.2} ms  p50 {:.2} ms  p90 {:.2} ms  max {:.2} ms",
        s.min,
        s.p50,
        s.p90,
        s.max
    );
    outln!("memory: VMM RSS beyond guest memory, at exit");
    outln!(
        "  min {:.1} MiB  p50 {:.1} MiB  max {:.1} MiB",
        r.min / 1024.0,
        r.p50 / 1024.0,
        r.max / 1024.0
    );
    Ok(())
}
