//! End-to-end tests of the testbed network: real namespaces, bridge, taps, veths, dnsmasq,
//! busybox udhcpc and ISC dhclient. Every test uses its own testbed name; clients live in a
//! namespace of their own (`vnbtest-<name>`) on a veth attached to the testbed bridge, so no
//! packet leaves the test's namespaces.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{require, Capability};
use vnetbed::net::{
    open_tap, DhcpEvent, DhcpEventKind, NetError, Testbed, TestbedConfig, TestbedStatus,
};

/// State root shared by all tests of this file (and by the `vnetbed` processes they run).
const STATE_ROOT: &str = "/run/vnetbed-test";

/// Held by the tests that run `vnetbed net gc` and check what it removed: one gc must not
/// collect another test's deliberate leftovers.
static GC_RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn gc_lock() -> std::sync::MutexGuard<'static, ()> {
    GC_RUNS.lock().unwrap_or_else(|p| p.into_inner())
}

const BASE_CAPS: [Capability; 4] = [
    Capability::Root,
    Capability::Program("dnsmasq"),
    Capability::Program("ip"),
    Capability::Program("busybox"),
];

fn caps_with(extra: &'static str) -> Vec<Capability> {
    let mut caps = BASE_CAPS.to_vec();
    caps.push(Capability::Program(extra));
    caps
}

fn config(name: &str) -> TestbedConfig {
    TestbedConfig {
        name: name.into(),
        state_root: PathBuf::from(STATE_ROOT),
        ..TestbedConfig::default()
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `vnetbed` with the test state root.
fn vnetbed(args: &[&str]) -> Output {
    common::vnetbed()
        .args(args)
        .env("VNETBED_STATE_DIR", STATE_ROOT)
        .output()
        .expect("run vnetbed")
}

fn vnetbed_ok(args: &[&str]) -> String {
    let out = vnetbed(args);
    assert!(
        out.status.success(),
        "vnetbed {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Takes a CLI-started testbed down on drop, so a failing test leaves nothing behind.
struct CliTestbed(&'static str);

impl Drop for CliTestbed {
    fn drop(&mut self) {
        let _ = vnetbed(&["net", "down", "--name", self.0]);
    }
}

fn cli_status(name: &str) -> TestbedStatus {
    serde_json::from_str(&vnetbed_ok(&["net", "status", "--name", name, "--json"]))
        .expect("status json")
}

/// A DHCP client host: namespace `vnbtest-<name>` with `eth0`, a veth whose peer sits on the
/// testbed bridge. Removed (with its processes) on drop.
struct ClientHost {
    netns: String,
    dir: PathBuf,
    mac: String,
    children: Vec<Child>,
}

impl ClientHost {
    fn attach(testbed: &str, mac_byte: u8) -> ClientHost {
        let netns = format!("vnbtest-{testbed}");
        let dir = PathBuf::from(format!("/tmp/vnbtest-{testbed}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("client dir");
        let _ = run("ip", &["netns", "del", &netns]);
        run_ok("ip", &["netns", "add", &netns]);
        let host = ClientHost {
            netns: netns.clone(),
            dir,
            mac: format!("02:00:00:00:00:{mac_byte:02x}"),
            children: vec![],
        };
        let tb_ns = format!("vnetbed-{testbed}");
        let peer = format!("vnb{testbed}c");
        let bridge = format!("vnb{testbed}br");
        run_ok(
            "ip",
            &[
                "-n", &tb_ns, "link", "add", &peer, "type", "veth", "peer", "name", "eth0",
                "netns", &netns,
            ],
        );
        run_ok(
            "ip",
            &["-n", &tb_ns, "link", "set", &peer, "master", &bridge],
        );
        run_ok("ip", &["-n", &tb_ns, "link", "set", &peer, "up"]);
        run_ok("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        run_ok(
            "ip",
            &["-n", &netns, "link", "set", "eth0", "address", &host.mac],
        );
        run_ok("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
        host
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\nexit 0\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// One busybox udhcpc exchange (-q: quit once bound); returns what the client received.
    fn udhcpc_once(&self) -> Lease {
        let out = self.dir.join("bound");
        let script = self.script(
            "udhcpc.sh",
            &format!(
                "[ \"$1\" = bound ] && echo \"ip=$ip lease=$lease opt58=$opt58 opt59=$opt59\" >> {}",
                out.display()
            ),
        );
        let script = script.to_string_lossy().into_owned();
        let args = [
            "netns",
            "exec",
            &self.netns,
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-q",
            "-f",
            "-n",
        ];
        let more = ["-t", "5", "-T", "2", "-O", "58", "-O", "59", "-s", &script];
        let all: Vec<&str> = args.iter().chain(more.iter()).copied().collect();
        let result = run("ip", &all);
        assert!(
            result.status.success(),
            "udhcpc failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let text = std::fs::read_to_string(&out).expect("udhcpc bound output");
        Lease::parse(text.lines().last().expect("one bound line"))
    }

    /// Start ISC dhclient in the foreground; it configures the address (so that it can unicast
    /// renewals) and follows T1/T2. Its script logs each state change.
    fn start_dhclient(&mut self) {
        let log = self.dir.join("dhclient.log");
        let script = self.script(
            "dhclient.sh",
            &format!(
                "case \"$reason\" in BOUND|RENEW|REBIND|REBOOT) ip addr replace \"$new_ip_address/$new_subnet_mask\" dev \"$interface\" ;; esac\n\
                 echo \"$reason ip=$new_ip_address lease=$new_dhcp_lease_time t1=$new_dhcp_renewal_time t2=$new_dhcp_rebinding_time\" >> {}",
                log.display()
            ),
        );
        let lf = self.dir.join("dhclient.leases");
        let pf = self.dir.join("dhclient.pid");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "dhclient", "-d", "-1", "-sf"])
            .arg(&script)
            .arg("-lf")
            .arg(&lf)
            .arg("-pf")
            .arg(&pf)
            .arg("eth0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dhclient");
        self.children.push(child);
    }

    /// `dhclient -r`: stop the running dhclient and release the lease.
    fn dhclient_release(&self) {
        let script = self.dir.join("dhclient.sh");
        let lf = self.dir.join("dhclient.leases");
        let pf = self.dir.join("dhclient.pid");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "dhclient", "-r", "-sf"])
            .arg(&script)
            .arg("-lf")
            .arg(&lf)
            .arg("-pf")
            .arg(&pf)
            .arg("eth0")
            .output()
            .expect("dhclient -r");
        assert!(
            out.status.success(),
            "dhclient -r: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn dhclient_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dhclient.log")).unwrap_or_default()
    }
}

impl Drop for ClientHost {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = run("ip", &["netns", "del", &self.netns]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a client received with its lease.
#[derive(Debug, PartialEq, Eq)]
struct Lease {
    ip: Ipv4Addr,
    lease: u32,
    t1: u32,
    t2: u32,
}

impl Lease {
    /// Parse `ip=… lease=… opt58=<hex> opt59=<hex>` written by the udhcpc script.
    fn parse(line: &str) -> Lease {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .to_string()
        };
        let hex = |key: &str| {
            u32::from_str_radix(&field(key), 16).unwrap_or_else(|_| panic!("{key} in {line:?}"))
        };
        Lease {
            ip: field("ip").parse().expect("ip"),
            lease: field("lease").parse().expect("lease"),
            t1: hex("opt58"),
            t2: hex("opt59"),
        }
    }
}

/// Wait for an event matching `pred`.
fn wait_event(
    rx: &Receiver<DhcpEvent>,
    timeout: Duration,
    pred: impl Fn(&DhcpEvent) -> bool,
) -> Option<DhcpEvent> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(ev) if pred(&ev) => return Some(ev),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn kinds_for(events: &[DhcpEvent], mac: &str) -> Vec<DhcpEventKind> {
    events
        .iter()
        .filter(|e| e.mac == mac)
        .map(|e| e.kind)
        .collect()
}

fn assert_exchange(events: &[DhcpEvent], mac: &str, ip: Ipv4Addr) {
    use DhcpEventKind::*;
    let kinds = kinds_for(events, mac);
    for kind in [Discover, Offer, Request, Ack] {
        assert!(kinds.contains(&kind), "no {kind:?} for {mac} in {kinds:?}");
    }
    let ack = events
        .iter()
        .find(|e| e.mac == mac && e.kind == Ack)
        .expect("ack");
    assert_eq!(ack.ip, Some(ip));
}

/// Everything a testbed could leave behind: its namespace, its state directory, links named
/// after it in the root namespace, and dnsmasq processes naming its state directory.
fn leftovers(name: &str) -> Vec<String> {
    let mut found = vec![];
    let netns = format!("vnetbed-{name}");
    if Path::new("/run/netns").join(&netns).exists() {
        found.push(format!("namespace {netns}"));
    }
    let state = Path::new(STATE_ROOT).join(name);
    if state.exists() {
        found.push(format!("state dir {}", state.display()));
    }
    let links = run_ok("ip", &["-o", "link", "show"]);
    for line in links.lines().filter(|l| l.contains(&format!("vnb{name}"))) {
        found.push(format!("root link {line}"));
    }
    let marker = format!("{}/", state.display());
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("dnsmasq") && cmdline.contains(&marker) {
            found.push(format!("process {pid}: {cmdline}"));
        }
    }
    found
}

/// The root namespace's links, addresses and routes, as `ip -j` prints them.
fn root_namespace_snapshot() -> Vec<serde_json::Value> {
    ["link", "addr", "route"]
        .iter()
        .map(|what| serde_json::from_str(&run_ok("ip", &["-j", what, "show"])).expect("ip -j json"))
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
    matches!(state.as_deref(), Some(s) if s != "Z" && s != "X")
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn udhcpc_gets_the_one_minute_schedule_and_the_events_show_the_exchange() {
    if !require("udhcpc_gets_the_one_minute_schedule", &BASE_CAPS) {
        return;
    }
    let testbed = Testbed::up(config("tdhcp")).expect("up");
    let status = testbed.status();
    assert_eq!(
        (status.info.lease_secs, status.info.effective_lease_secs),
        (60, 120)
    );
    assert!(
        status.info.lease_note.contains("120 s"),
        "{}",
        status.info.lease_note
    );
    let events = testbed.subscribe();
    let client = ClientHost::attach("tdhcp", 0x11);
    let lease = client.udhcpc_once();
    // dnsmasq's floor: asked for one minute, it sends 120 s; T1/T2 keep the 1-minute rhythm.
    assert_eq!(
        (lease.lease, lease.t1, lease.t2),
        (120, 30, 52),
        "{lease:?}"
    );
    let ack = wait_event(&events, secs(5), |e| {
        e.kind == DhcpEventKind::Ack && e.mac == client.mac
    });
    assert!(
        ack.is_some(),
        "no ACK event; dnsmasq said: {:?}",
        testbed.dnsmasq_output()
    );
    assert_exchange(&testbed.events(), &client.mac, lease.ip);
    let range = status.info.dhcp_range_first..=status.info.dhcp_range_last;
    assert!(range.contains(&lease.ip), "{} outside {range:?}", lease.ip);
    drop(client);
    testbed.down().expect("down");
    assert_eq!(leftovers("tdhcp"), Vec::<String>::new());
}

#[test]
fn cli_overrides_reach_the_client_and_events_are_journaled() {
    if !require("cli_overrides_reach_the_client", &BASE_CAPS) {
        return;
    }
    let _guard = CliTestbed("tover");
    let up = vnetbed_ok(&[
        "net",
        "up",
        "--name",
        "tover",
        "--renew-after",
        "20s",
        "--rebind-after",
        "40s",
    ]);
    assert!(up.contains("T1 20 s, T2 40 s"), "{up}");
    let status = cli_status("tover");
    assert_eq!(
        (
            status.info.renew_secs,
            status.info.rebind_secs,
            status.info.effective_lease_secs
        ),
        (20, 40, 120)
    );
    let client = ClientHost::attach("tover", 0x12);
    let lease = client.udhcpc_once();
    assert_eq!(
        (lease.lease, lease.t1, lease.t2),
        (120, 20, 40),
        "{lease:?}"
    );
    // Other processes read the event stream from events.jsonl in the state directory.
    let journal = status.info.state_dir.join("events.jsonl");
    let read_journal = || vnetbed::net::read_journal(&journal).unwrap_or_default();
    assert!(wait_until(secs(5), || kinds_for(
        &read_journal(),
        &client.mac
    )
    .contains(&DhcpEventKind::Ack)));
    assert_exchange(&read_journal(), &client.mac, lease.ip);
    drop(client);
    vnetbed_ok(&["net", "down", "--name", "tover"]);
    assert_eq!(leftovers("tover"), Vec::<String>::new());
}

#[test]
fn fast_schedule_renewals_come_on_time() {
    if !require(
        "fast_schedule_renewals_come_on_time",
        &caps_with("dhclient"),
    ) {
        return;
    }
    let (t1, t2) = (4u64, 8u64);
    let testbed = Testbed::up(TestbedConfig {
        renew_after: Some(secs(t1)),
        rebind_after: Some(secs(t2)),
        ..config("tfast")
    })
    .expect("up");
    let events = testbed.subscribe();
    let mut client = ClientHost::attach("tfast", 0x13);
    client.start_dhclient();
    let is_ack = |e: &DhcpEvent| e.kind == DhcpEventKind::Ack && e.mac == client.mac;
    let first = wait_event(&events, secs(15), is_ack).expect("first ACK");
    let mut acks = vec![first.clone()];
    while acks.len() < 5 {
        let next = wait_event(&events, secs(4 * t1 + 2), is_ack).unwrap_or_else(|| {
            panic!(
                "renewal {} missing; dhclient: {}",
                acks.len(),
                client.dhclient_log()
            )
        });
        acks.push(next);
    }
    let gaps: Vec<f64> = acks
        .windows(2)
        .map(|w| (w[1].time_unix_ms - w[0].time_unix_ms) as f64 / 1000.0)
        .collect();
    println!(
        "T1 {t1} s; renewal ACK intervals: {gaps:?} s; dhclient: {}",
        client.dhclient_log()
    );
    for gap in &gaps {
        // dnsmasq may round T1 up by a second and dhclient adds jitter: generous bounds.
        assert!(
            *gap >= t1 as f64 * 0.5 && *gap <= (2 * t1 + 2) as f64,
            "renewal after {gap} s with T1 {t1} s"
        );
    }
    assert!(
        acks.iter().all(|a| a.ip == first.ip),
        "address changed: {acks:?}"
    );
    client.dhclient_release();
    let release = wait_event(&events, secs(5), |e| {
        e.kind == DhcpEventKind::Release && e.mac == client.mac
    });
    assert_eq!(release.expect("RELEASE event").ip, first.ip);
    drop(client);
    testbed.down().expect("down");
}

#[test]
fn killed_dnsmasq_comes_back_and_the_next_renewal_keeps_the_address() {
    if !require("killed_dnsmasq_comes_back", &caps_with("dhclient")) {
        return;
    }
    let testbed = Testbed::up(TestbedConfig {
        renew_after: Some(secs(4)),
        rebind_after: Some(secs(8)),
        ..config("tkill")
    })
    .expect("up");
    let events = testbed.subscribe();
    let mut client = ClientHost::attach("tkill", 0x14);
    client.start_dhclient();
    let is_ack = |e: &DhcpEvent| e.kind == DhcpEventKind::Ack && e.mac == client.mac;
    let bound = wait_event(&events, secs(15), is_ack).expect("first ACK");
    let old_pid = testbed.status().dnsmasq_pid.expect("dnsmasq pid");
    assert_eq!(testbed.status().dnsmasq_restarts, 0);
    // SAFETY: kill only sends a signal (no memory is touched); the pid is that of the
    // dnsmasq this test's testbed runs and has not reaped, so it is not recycled.
    let rc = unsafe { libc::kill(old_pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
    let killed = Instant::now();
    assert!(
        wait_until(secs(3), || {
            let s = testbed.status();
            s.dnsmasq_restarts == 1 && s.dnsmasq_pid.is_some_and(|p| p != old_pid)
        }),
        "dnsmasq was not restarted: {:?}",
        testbed.status()
    );
    println!("dnsmasq restarted {:?} after SIGKILL", killed.elapsed());
    let status_file: TestbedStatus = serde_json::from_slice(
        &std::fs::read(testbed.state_dir().join("status.json")).expect("status.json"),
    )
    .expect("status json");
    assert_eq!(status_file.dnsmasq_restarts, 1);
    let renewal = wait_event(&events, secs(20), is_ack).unwrap_or_else(|| {
        panic!(
            "no renewal ACK after restart; dhclient: {}",
            client.dhclient_log()
        )
    });
    assert_eq!(
        renewal.ip, bound.ip,
        "the address changed across the restart"
    );
    drop(client);
    testbed.down().expect("down");
    assert_eq!(leftovers("tkill"), Vec::<String>::new());
}

#[test]
fn down_leaves_nothing_and_the_root_namespace_is_unchanged() {
    if !require("down_leaves_nothing", &BASE_CAPS) {
        return;
    }
    let before = root_namespace_snapshot();
    let guard = CliTestbed("tdown");
    vnetbed_ok(&["net", "up", "--name", "tdown", "--taps", "3"]);
    let status = cli_status("tdown");
    assert_eq!(status.info.taps, ["vnbtdownt0", "vnbtdownt1", "vnbtdownt2"]);
    let in_ns = run_ok("ip", &["-n", "vnetbed-tdown", "-o", "link", "show"]);
    for tap in &status.info.taps {
        assert!(
            in_ns.contains(&format!("{tap}: ")) && in_ns.contains("master vnbtdownbr"),
            "{in_ns}"
        );
    }
    let client = ClientHost::attach("tdown", 0x15);
    client.udhcpc_once();
    drop(client);
    vnetbed_ok(&["net", "down", "--name", "tdown"]);
    std::mem::forget(guard);
    assert_eq!(leftovers("tdown"), Vec::<String>::new());
    let after = root_namespace_snapshot();
    assert_eq!(before, after, "the root namespace changed");
    let again = vnetbed(&["net", "status", "--name", "tdown"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no testbed named \"tdown\" is running")
    );
}

#[test]
fn gc_cleans_up_after_a_sigkilled_holder() {
    if !require("gc_cleans_up_after_a_sigkilled_holder", &BASE_CAPS) {
        return;
    }
    let _gc = gc_lock();
    let _guard = CliTestbed("tgc");
    vnetbed_ok(&["net", "up", "--name", "tgc", "--taps", "2"]);
    let status = cli_status("tgc");
    let holder = status.info.holder_pid;
    let dnsmasq = status.dnsmasq_pid.expect("dnsmasq pid");
    // SAFETY: kill only sends a signal (no memory is touched); the pid is that of the
    // supervisor this test just started, which holds the testbed until killed.
    let rc = unsafe { libc::kill(holder as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
    assert!(
        wait_until(secs(5), || !pid_alive(holder)),
        "holder survived SIGKILL"
    );
    // dnsmasq dies with its holder (parent-death signal); the namespace stays behind.
    assert!(
        wait_until(secs(5), || !pid_alive(dnsmasq)),
        "dnsmasq outlived its holder"
    );
    assert!(
        !leftovers("tgc").is_empty(),
        "nothing left behind to collect"
    );
    let out = vnetbed(&["net", "status", "--name", "tgc"]);
    assert!(!out.status.success(), "status of a dead testbed succeeded");
    // A dnsmasq of that testbed that survived (say its holder died some other way): gc must
    // find it through dnsmasq.pid and its command line, and kill it.
    let lease_file = status.info.state_dir.join("leases");
    let mut stray = Command::new("ip")
        .args([
            "netns",
            "exec",
            "vnetbed-tgc",
            "dnsmasq",
            "--no-daemon",
            "--port=0",
            "--conf-file=/dev/null",
        ])
        .arg(format!("--dhcp-leasefile={}", lease_file.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stray dnsmasq");
    std::fs::write(
        status.info.state_dir.join("dnsmasq.pid"),
        format!("{}\n", stray.id()),
    )
    .expect("pid file");
    assert!(wait_until(secs(5), || leftovers("tgc")
        .iter()
        .any(|l| l.starts_with("process"))));
    let gc = vnetbed_ok(&["net", "gc"]);
    assert!(gc.contains("removed leftover testbed tgc"), "{gc}");
    assert!(
        gc.contains(&format!("killed leftover dnsmasq {}", stray.id())),
        "{gc}"
    );
    assert!(
        wait_until(secs(5), || matches!(stray.try_wait(), Ok(Some(_)))),
        "the stray dnsmasq survived gc"
    );
    assert_eq!(leftovers("tgc"), Vec::<String>::new());
}

#[test]
fn twenty_up_down_cycles_leave_nothing() {
    if !require("twenty_up_down_cycles_leave_nothing", &BASE_CAPS) {
        return;
    }
    let links_before: BTreeSet<String> = run_ok("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .collect();
    let started = Instant::now();
    for cycle in 0..20 {
        let testbed = Testbed::up(TestbedConfig {
            taps: 2,
            ..config("tcyc")
        })
        .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        assert!(testbed.status().dnsmasq_pid.is_some());
        if cycle % 2 == 0 {
            testbed
                .down()
                .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        } else {
            drop(testbed); // Drop tears down too.
        }
        assert_eq!(
            leftovers("tcyc"),
            Vec::<String>::new(),
            "after cycle {cycle}"
        );
    }
    println!(
        "20 up/down cycles (2 taps each) took {:?}",
        started.elapsed()
    );
    let links_after: BTreeSet<String> = run_ok("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .collect();
    assert!(
        links_after.iter().all(|l| !l.contains("vnbtcyc")),
        "{links_after:?}"
    );
    assert_eq!(
        links_before.iter().filter(|l| l.starts_with("vnb")).count(),
        links_after.iter().filter(|l| l.starts_with("vnb")).count()
    );
}

#[test]
fn error_not_root_says_to_use_root() {
    if !require(
        "error_not_root",
        &[Capability::Root, Capability::Program("setpriv")],
    ) {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(common::vnetbed_bin())
        .args(["net", "up", "--name", "terr1"])
        .env("VNETBED_STATE_DIR", STATE_ROOT)
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("needs root") && stderr.contains("uid is 65534") && stderr.contains("sudo"),
        "{stderr}"
    );
    assert_eq!(leftovers("terr1"), Vec::<String>::new());
}

#[test]
fn error_missing_programs_name_the_package() {
    if !require("error_missing_programs", &BASE_CAPS) {
        return;
    }
    let dir = PathBuf::from("/tmp/vnbtest-path");
    let _ = std::fs::remove_dir_all(&dir);
    for (only, missing, package) in [
        ("ip", "dnsmasq", "dnsmasq-base"),
        ("dnsmasq", "ip", "iproute2"),
    ] {
        let bin = dir.join(only);
        std::fs::create_dir_all(&bin).expect("dir");
        let real = common::find_program(only).expect("real program");
        std::os::unix::fs::symlink(&real, bin.join(only)).expect("symlink");
        let out = common::vnetbed()
            .args(["net", "up", "--name", "terr2", "--foreground"])
            .env("VNETBED_STATE_DIR", STATE_ROOT)
            .env("PATH", &bin)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("`{missing}` was not found on PATH"))
                && stderr.contains(&format!("apt-get install {package}")),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(leftovers("terr2"), Vec::<String>::new());
}

#[test]
fn error_name_in_use_and_tap_in_use() {
    if !require("error_name_in_use_and_tap_in_use", &BASE_CAPS) {
        return;
    }
    let testbed = Testbed::up(TestbedConfig {
        taps: 2,
        ..config("terr3")
    })
    .expect("up");
    let err = Testbed::up(config("terr3"))
        .err()
        .expect("second up must fail");
    assert!(matches!(err, NetError::NameInUse { .. }), "{err}");
    assert!(
        err.to_string().contains("already in use")
            && err.to_string().contains("vnetbed net down --name terr3"),
        "{err}"
    );
    // Through the CLI (the detached supervisor's error is passed on).
    let out = vnetbed(&["net", "up", "--name", "terr3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"terr3\" is already in use"));

    let tap = &testbed.info().taps[0];
    let held = open_tap("terr3", tap).expect("first open of the tap");
    let err = open_tap("terr3", tap).expect_err("second open must fail");
    assert!(matches!(err, NetError::TapInUse { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(held);
    // Released: it can be opened again, and the second tap is independent.
    let again = open_tap("terr3", tap).expect("reopen");
    let other = open_tap("terr3", &testbed.info().taps[1]).expect("second tap");
    drop((again, other));
    let err = open_tap("terr3", "vnbterr3t9").expect_err("no such tap");
    assert!(
        err.to_string().contains("does not exist in testbed terr3"),
        "{err}"
    );
    testbed.down().expect("down");
    assert_eq!(leftovers("terr3"), Vec::<String>::new());
}

#[test]
fn error_bad_subnet_and_schedule_are_rejected_before_anything_is_built() {
    if !require("error_bad_subnet", &BASE_CAPS) {
        return;
    }
    for (args, expected) in [
        (
            vec!["--subnet", "198.18.0.1/24"],
            "host bits are set (did you mean 198.18.0.0/24?)",
        ),
        (
            vec!["--subnet", "198.18.0.0/30"],
            "prefix must be from 8 to 28",
        ),
        (vec!["--subnet", "banana"], "bad subnet \"banana\""),
        (
            vec!["--renew-after", "50s", "--rebind-after", "40s"],
            "bad lease schedule",
        ),
        (vec!["--lease", "1x"], "`1x` is not a duration"),
    ] {
        let mut all = vec!["net", "up", "--name", "terr5"];
        all.extend(args.iter());
        let out = vnetbed(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let err = Testbed::up(TestbedConfig {
        name: "Bad/Name".into(),
        ..config("x")
    })
    .err()
    .expect("bad name");
    assert!(err.to_string().contains("bad testbed name"), "{err}");
    assert_eq!(leftovers("terr5"), Vec::<String>::new());
}

#[test]
fn sigint_to_a_foreground_holder_tears_everything_down() {
    if !require("sigint_to_a_foreground_holder", &BASE_CAPS) {
        return;
    }
    let _guard = CliTestbed("tsig");
    // 0: no signal from the test, `vnetbed net down` instead.
    for signal in [libc::SIGINT, libc::SIGTERM, 0] {
        let mut holder = common::vnetbed()
            .args(["net", "up", "--name", "tsig", "--foreground", "--taps", "2"])
            .env("VNETBED_STATE_DIR", STATE_ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("foreground holder");
        let ready = wait_until(secs(10), || {
            let out = vnetbed(&["net", "status", "--name", "tsig", "--json"]);
            out.status.success()
                && serde_json::from_slice::<TestbedStatus>(&out.stdout)
                    .is_ok_and(|s| s.dnsmasq_pid.is_some())
        });
        assert!(ready, "foreground testbed did not come up");
        if signal == 0 {
            // `net down` works on a foreground holder too.
            vnetbed_ok(&["net", "down", "--name", "tsig"]);
        } else {
            // SAFETY: kill on the pid of the child this test just spawned.
            assert_eq!(unsafe { libc::kill(holder.id() as libc::pid_t, signal) }, 0);
        }
        assert!(
            wait_until(secs(10), || matches!(holder.try_wait(), Ok(Some(_)))),
            "holder ignored signal {signal}"
        );
        assert!(
            holder.wait().expect("wait").success(),
            "holder failed on signal {signal}"
        );
        assert_eq!(
            leftovers("tsig"),
            Vec::<String>::new(),
            "after signal {signal}"
        );
    }
}

#[test]
fn the_testbed_handle_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Testbed>();
}

#[test]
fn down_and_gc_with_another_state_root_leave_a_live_testbed_alone() {
    if !require("down_and_gc_with_another_state_root", &BASE_CAPS) {
        return;
    }
    let _gc = gc_lock();
    let testbed = Testbed::up(config("troot")).expect("up");
    let other_root = "/run/vnetbed-test-other";
    let down = common::vnetbed()
        .args(["net", "down", "--name", "troot"])
        .env("VNETBED_STATE_DIR", other_root)
        .output()
        .expect("down");
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        !down.status.success(),
        "down removed a testbed it does not hold"
    );
    assert!(
        stderr.contains("is its holder using another VNETBED_STATE_DIR"),
        "{stderr}"
    );
    let gc = common::vnetbed()
        .args(["net", "gc"])
        .env("VNETBED_STATE_DIR", other_root)
        .output()
        .expect("gc");
    let stdout = String::from_utf8_lossy(&gc.stdout);
    assert!(
        gc.status.success() && !stdout.contains("removed leftover testbed troot"),
        "{stdout}"
    );
    // Still whole: the namespace is there and dnsmasq runs in it.
    assert!(Path::new("/run/netns/vnetbed-troot").exists());
    let pid = testbed.status().dnsmasq_pid.expect("dnsmasq");
    assert!(pid_alive(pid));
    // Its own holder can still take it down; `down` of a library-held testbed is refused.
    let refused = vnetbed(&["net", "down", "--name", "troot"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not by `vnetbed net up`"));
    testbed.down().expect("down");
    let _ = std::fs::remove_dir(other_root);
    assert_eq!(leftovers("troot"), Vec::<String>::new());
}

#[test]
fn a_dnsmasq_that_fails_to_start_is_reported_and_nothing_is_left() {
    if !require("a_dnsmasq_that_fails_to_start", &BASE_CAPS) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = PathBuf::from("/tmp/vnbtest-fakednsmasq");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let fake = dir.join("dnsmasq");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'dnsmasq: fake failure for the test' >&2\nexit 3\n",
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = common::vnetbed()
        .args(["net", "up", "--name", "terr6"])
        .env("VNETBED_STATE_DIR", STATE_ROOT)
        .env("PATH", path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("dnsmasq did not start in testbed terr6")
            && stderr.contains("fake failure for the test"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(leftovers("terr6"), Vec::<String>::new());
}

/// `vnetbed run builtin:hello` with one `--net` spec (the test state root is irrelevant: run
/// keeps no testbed state).
fn run_hello_with_net(spec: &str) -> Output {
    common::vnetbed()
        .args([
            "run",
            "--kernel",
            "builtin:hello",
            "--serial",
            "none",
            "--net",
            spec,
        ])
        .output()
        .expect("run vnetbed run")
}

#[test]
fn run_on_a_busy_or_misspelt_tap_fails_with_a_clear_error_and_creates_nothing() {
    let mut caps = BASE_CAPS.to_vec();
    caps.extend([Capability::Kvm, Capability::Tun]);
    if !require("run_on_a_busy_or_misspelt_tap", &caps) {
        return;
    }
    let testbed = Testbed::up(config("trun")).expect("up");
    let netns = testbed.info().netns.clone();
    let tap = testbed.info().taps[0].clone();

    // Busy: another holder (standing in for a second VMM) has the tap open.
    let held = open_tap("trun", &tap).expect("hold the tap");
    let out = run_hello_with_net(&format!("tap={tap},netns={netns}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "run on a busy tap succeeded");
    assert!(
        stderr.contains(&format!(
            "tap `{tap}` in network namespace `{netns}` is in use by another process"
        )) && stderr.contains("another VMM on the same tap?")
            && !stderr.contains("ip tuntap add"),
        "{stderr}"
    );
    drop(held);

    // Misspelt, with the testbed's namespace: refused, and no tap is created there.
    let typo = "vnbtrunt7";
    let out = run_hello_with_net(&format!("tap={typo},netns={netns}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "run on a misspelt tap succeeded");
    assert!(
        stderr.contains(&format!(
            "tap `{typo}` does not exist in network namespace `{netns}`"
        )) && stderr.contains("vnetbed net status")
            && stderr.contains("--taps"),
        "{stderr}"
    );
    let links = run_ok("ip", &["-n", &netns, "-o", "link", "show"]);
    assert!(!links.contains(typo), "a tap was created: {links}");

    // Misspelt, without a namespace: refused too, never created in the root namespace.
    let out = run_hello_with_net(&format!("tap={typo}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "run on a missing root-namespace tap succeeded"
    );
    assert!(
        stderr.contains(&format!(
            "tap `{typo}` does not exist in the VMM's network namespace"
        )),
        "{stderr}"
    );
    assert!(!run_ok("ip", &["-o", "link", "show"]).contains(typo));

    // The real tap, free again, still works: the guest boots and exits 0.
    let out = run_hello_with_net(&format!("tap={tap},netns={netns}"));
    assert!(
        out.status.success(),
        "run on the testbed tap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    testbed.down().expect("down");
    assert_eq!(leftovers("trun"), Vec::<String>::new());
}

/// Run `vnetbed <args>` as uid/gid 65534 with no capabilities.
fn vnetbed_as_nobody(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(common::vnetbed_bin())
        .args(args)
        .env("VNETBED_STATE_DIR", STATE_ROOT)
        .output()
        .expect("setpriv");
    (out, started.elapsed())
}

#[test]
fn error_not_root_down_and_gc_say_to_use_root_at_once() {
    if !require(
        "error_not_root_down_and_gc",
        &[
            Capability::Root,
            Capability::Program("setpriv"),
            Capability::Program("ip"),
            Capability::Program("dnsmasq"),
        ],
    ) {
        return;
    }
    // A live testbed held by a `vnetbed net up` supervisor, which a non-root `down` must not
    // even try to signal.
    let _guard = CliTestbed("tnroot");
    vnetbed_ok(&["net", "up", "--name", "tnroot"]);
    let holder = cli_status("tnroot").info.holder_pid;
    for args in [vec!["net", "down", "--name", "tnroot"], vec!["net", "gc"]] {
        let (out, took) = vnetbed_as_nobody(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded as uid 65534");
        assert!(
            stderr.contains("needs root")
                && stderr.contains("uid is 65534")
                && stderr.contains("sudo")
                && !stderr.contains("`ip "),
            "{args:?}: {stderr}"
        );
        assert!(took < secs(5), "{args:?} took {took:?}");
    }
    assert!(pid_alive(holder), "the holder was disturbed");
    assert!(cli_status("tnroot").dnsmasq_pid.is_some());
    vnetbed_ok(&["net", "down", "--name", "tnroot"]);
    assert_eq!(leftovers("tnroot"), Vec::<String>::new());
}

#[test]
fn gc_goes_on_past_a_leftover_it_cannot_remove_and_reports_it() {
    if !require("gc_goes_on_past_a_failure", &BASE_CAPS) {
        return;
    }
    let _gc = gc_lock();
    use vnetbed::net::state::{Holder, StateDir};
    let dead = Holder {
        pid: u32::MAX - 1,
        start_time: 0,
    };
    // tgcf1: a dead holder and a "namespace" handle that is a plain file, which `ip` cannot
    // enter, so its removal fails. tgcf2 (listed after it): a dead holder, removable.
    let bogus = Path::new("/run/netns/vnetbed-tgcf1");
    std::fs::create_dir_all("/run/netns").expect("/run/netns");
    std::fs::write(bogus, b"").expect("bogus namespace handle");
    for name in ["tgcf1", "tgcf2"] {
        let state = StateDir::create(Path::new(STATE_ROOT), name).expect("state dir");
        state.write_holder(&dead).expect("holder");
    }
    let out = vnetbed(&["net", "gc"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Clean up whatever is left before asserting.
    let _ = run("ip", &["netns", "del", "vnetbed-tgcf1"]);
    let _ = std::fs::remove_file(bogus);
    let _ = StateDir::at(Path::new(STATE_ROOT), "tgcf1").remove();
    let _ = StateDir::at(Path::new(STATE_ROOT), "tgcf2").remove();
    assert!(!out.status.success(), "gc hid a failure: {stdout}");
    assert!(
        stdout.contains("removed leftover testbed tgcf2"),
        "gc stopped at the failure: {stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("could not be removed")
            && stderr.contains("tgcf1:")
            && stderr.contains("run `vnetbed net gc` again"),
        "{stderr}"
    );
    assert_eq!(leftovers("tgcf1"), Vec::<String>::new());
    assert_eq!(leftovers("tgcf2"), Vec::<String>::new());
}
