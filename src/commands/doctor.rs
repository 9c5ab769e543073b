//! `vnetbed doctor`: what this host can do, and what to do about what it cannot.

use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use serde::Serialize;

/// Arguments of `vnetbed doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip the guest speed measurement (it boots a tiny VM for about a second).
    #[arg(long)]
    pub no_speed_test: bool,
}

/// Verdict when guest ring 0 runs natively.
pub const VERDICT_HARDWARE: &str = "hardware-assisted";
/// Verdict when guest ring 0 is emulated.
pub const VERDICT_EMULATED: &str =
    "guest kernel mode is emulated (nested without VMX/SVM): stock Linux guests are impractical here, use the probe guest";

/// The whole report.
#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// /dev/kvm.
    pub kvm: KvmReport,
    /// Guest speed, when measured.
    pub speed: Option<vmm::speedtest::SpeedReport>,
    /// Overall verdict on guest kernels (`hardware-assisted` or the emulated message).
    pub verdict: Option<String>,
    /// Host CPU virtualization flags.
    pub cpu_virtualization: Vec<String>,
    /// /dev/net/tun usable.
    pub tun: Check,
    /// CAP_NET_ADMIN in the effective set.
    pub cap_net_admin: Check,
    /// External programs.
    pub tools: Vec<ToolReport>,
    /// Problems, each with what to do.
    pub problems: Vec<String>,
}

/// A yes/no check with detail.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Whether it passed.
    pub ok: bool,
    /// Detail or advice.
    pub detail: String,
}

/// /dev/kvm.
#[derive(Debug, Serialize)]
pub struct KvmReport {
    /// Opened read-write.
    pub available: bool,
    /// Error text when not.
    pub error: Option<String>,
    /// KVM API version.
    pub api_version: Option<i32>,
    /// Maximum vCPUs per VM.
    pub max_vcpus: Option<usize>,
    /// Capabilities vnetbed uses, name -> present.
    pub capabilities: Vec<(String, bool)>,
}

/// An external program.
#[derive(Debug, Serialize)]
pub struct ToolReport {
    /// Program name.
    pub name: String,
    /// Where it was found.
    pub path: Option<PathBuf>,
    /// First line of its version output.
    pub version: Option<String>,
    /// The Debian package that provides it.
    pub package: String,
}

/// Programs vnetbed drives, with the Debian package of each and its version flag.
pub const TOOLS: &[(&str, &str, &str)] = &[
    ("ip", "iproute2", "-V"),
    ("dnsmasq", "dnsmasq-base", "--version"),
    ("iperf3", "iperf3", "--version"),
];

pub use vnetbed::net::preflight::find_program;

fn tool_report(name: &str, package: &str, flag: &str) -> ToolReport {
    let path = find_program(name);
    let version = path.as_ref().and_then(|p| {
        let out = Command::new(p).arg(flag).output().ok()?;
        let text = if out.stdout.is_empty() {
            out.stderr
        } else {
            out.stdout
        };
        String::from_utf8_lossy(&text)
            .lines()
            .next()
            .map(|l| l.trim().to_string())
    });
    ToolReport {
        name: name.into(),
        path,
        version,
        package: package.into(),
    }
}

fn kvm_report() -> KvmReport {
    match vmm::capabilities::probe() {
        Ok(k) => KvmReport {
            available: true,
            error: None,
            api_version: Some(k.api_version),
            max_vcpus: Some(k.max_vcpus),
            capabilities: k.capabilities,
        },
        Err(e) => KvmReport {
            available: false,
            error: Some(e.to_string()),
            api_version: None,
            max_vcpus: None,
            capabilities: vec![],
        },
    }
}

fn cpu_virtualization_flags() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    ["vmx", "svm", "hypervisor"]
        .iter()
        .filter(|f| flags.split_whitespace().any(|x| x == **f))
        .map(|f| f.to_string())
        .collect()
}

/// Whether CAP_NET_ADMIN (bit 12) is in this process's effective capabilities.
pub fn has_cap_net_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

fn tun_check() -> Check {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => Check {
            ok: true,
            detail: "/dev/net/tun opens read-write".into(),
        },
        Err(e) => Check {
            ok: false,
            detail: format!(
                "/dev/net/tun: {e}; load the tun module (`modprobe tun`) and run as root"
            ),
        },
    }
}

/// Build the report.
pub fn diagnose(speed_test: bool) -> DoctorReport {
    let kvm = kvm_report();
    let mut problems = Vec::new();
    if let Some(e) = &kvm.error {
        problems.push(e.clone());
    }
    let (speed, verdict) = if kvm.available && speed_test {
        match vmm::speedtest::measure() {
            Ok(s) => {
                let v = if s.ring0_emulated {
                    VERDICT_EMULATED
                } else {
                    VERDICT_HARDWARE
                };
                (Some(s), Some(v.to_string()))
            }
            Err(e) => {
                problems.push(format!("the guest speed test failed: {e}"));
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let tun = tun_check();
    if !tun.ok {
        problems.push(tun.detail.clone());
    }
    let cap = has_cap_net_admin();
    let cap_net_admin = Check {
        ok: cap,
        detail: if cap {
            "CAP_NET_ADMIN is effective".into()
        } else {
            "no CAP_NET_ADMIN: the testbed network (netns, bridge, taps) needs root".into()
        },
    };
    if !cap {
        problems.push(cap_net_admin.detail.clone());
    }
    let tools: Vec<ToolReport> = TOOLS.iter().map(|(n, p, f)| tool_report(n, p, f)).collect();
    for t in tools.iter().filter(|t| t.path.is_none()) {
        problems.push(format!(
            "`{}` is missing: install the Debian package {} (apt-get install {})",
            t.name, t.package, t.package
        ));
    }
    DoctorReport {
        kvm,
        speed,
        verdict,
        cpu_virtualization: cpu_virtualization_flags(),
        tun,
        cap_net_admin,
        tools,
        problems,
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn print_text(r: &DoctorReport) {
    outln!("KVM");
    if r.kvm.available {
        outln!(
            "  /dev/kvm: yes (API {}, up to {} vCPUs)",
            r.kvm.api_version.unwrap_or(0),
            r.kvm.max_vcpus.unwrap_or(0)
        );
        let caps: Vec<String> = r
            .kvm
            .capabilities
            .iter()
            .map(|(n, ok)| format!("{n}={}", yes(*ok)))
            .collect();
        outln!("  capabilities: {}", caps.join(" "));
    } else {
        outln!(
            "  /dev/kvm: NO: {}",
            r.kvm.error.as_deref().unwrap_or("unavailable")
        );
    }
    let flags = if r.cpu_virtualization.is_empty() {
        "none".to_string()
    } else {
        r.cpu_virtualization.join(" ")
    };
    outln!("  host CPU flags: {flags}");
    if let Some(s) = &r.speed {
        outln!("Guest speed");
        outln!(
            "  ring 0: {:>10.3} M instructions/s",
            s.ring0_instructions_per_s / 1e6
        );
        outln!(
            "  ring 3: {:>10.3} M instructions/s",
            s.ring3_instructions_per_s / 1e6
        );
        outln!("  ratio ring 3 / ring 0: {:.0}", s.ratio);
    }
    if let Some(v) = &r.verdict {
        outln!("  verdict: {v}");
    }
    outln!("Network");
    outln!("  /dev/net/tun: {} ({})", yes(r.tun.ok), r.tun.detail);
    outln!("  CAP_NET_ADMIN: {}", yes(r.cap_net_admin.ok));
    outln!("Tools");
    for t in &r.tools {
        match (&t.path, &t.version) {
            (Some(p), v) => outln!(
                "  {:<8} {} ({})",
                t.name,
                v.as_deref().unwrap_or("version unknown"),
                p.display()
            ),
            (None, _) => outln!("  {:<8} MISSING: apt-get install {}", t.name, t.package),
        }
    }
    if r.problems.is_empty() {
        outln!("No problems found.");
    } else {
        outln!("Problems");
        for p in &r.problems {
            outln!("  - {p}");
        }
    }
}

/// Run the doctor; exit status 0 when KVM works, 1 when there are problems.
pub fn main(args: DoctorArgs) -> i32 {
    let report = diagnose(!args.no_speed_test);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => outln!("{s}"),
            Err(e) => {
                eprintln!("vnetbed doctor: cannot encode the report: {e}");
                return 2;
            }
        }
    } else {
        print_text(&report);
    }
    i32::from(!report.problems.is_empty())
}
