//! The Linux guest image (guest-images/linux): it builds from Debian packages, holds everything
//! it needs, is reproducible, its agent speaks the `@probe` protocol (checked with the real
//! dhclient and dnsmasq in namespaces, without a guest kernel), and its kernel starts in
//! vnetbed with the initramfs. The end-to-end guest test runs only where guest ring 0 is not
//! emulated (see docs in guest-images/linux/README.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{require, vnetbed, Capability};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn linux_dir() -> PathBuf {
    repo().join("guest-images/linux")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnetbed-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the image builder needs on the host.
const BUILD_TOOLS: &[Capability] = &[
    Capability::Program("apt-get"),
    Capability::Program("apt-cache"),
    Capability::Program("dpkg"),
    Capability::Program("cpio"),
    Capability::Program("gzip"),
    Capability::Program("readelf"),
    Capability::Program("objcopy"),
];

/// A built image: the two paths the builder prints as its last two lines.
#[derive(Debug, Clone)]
struct Image {
    kernel: PathBuf,
    initramfs: PathBuf,
}

/// Run guest-images/linux/build.sh OUT_DIR (what `vnetbed image build linux` runs), with its
/// scratch space in `tmp`.
fn build_image(out: &Path, tmp: &Path) -> Image {
    let out = Command::new("bash")
        .arg(linux_dir().join("build.sh"))
        .arg(out)
        .env("TMPDIR", tmp)
        .output()
        .expect("run guest-images/linux/build.sh");
    assert!(
        out.status.success(),
        "build.sh failed: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 2, "build.sh printed {stdout:?}");
    let image = Image {
        kernel: PathBuf::from(lines[lines.len() - 2]),
        initramfs: PathBuf::from(lines[lines.len() - 1]),
    };
    assert!(image.kernel.is_file(), "{image:?}");
    assert!(image.initramfs.is_file(), "{image:?}");
    image
}

/// The image most tests share, built once per test binary by the command users run,
/// `vnetbed image build linux`, which must print the kernel and initramfs paths as its last
/// two lines.
fn shared_image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = vnetbed()
            .args(["image", "build", "linux"])
            .output()
            .expect("run vnetbed image build linux");
        assert!(
            out.status.success(),
            "vnetbed image build linux failed: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines.len() >= 2,
            "vnetbed image build linux printed {stdout:?}"
        );
        let image = Image {
            kernel: PathBuf::from(lines[lines.len() - 2]),
            initramfs: PathBuf::from(lines[lines.len() - 1]),
        };
        assert!(
            image.kernel.is_file() && image.kernel.is_absolute(),
            "{image:?}"
        );
        assert!(
            image.initramfs.is_file() && image.initramfs.is_absolute(),
            "{image:?}"
        );
        assert!(
            image
                .kernel
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz")),
            "{image:?}"
        );
        image
    })
}

/// The initramfs unpacked into a fresh directory.
fn unpack(image: &Image, name: &str) -> PathBuf {
    let dir = scratch(name);
    let out = Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | cpio -idm --quiet")
        .arg("sh")
        .arg(&image.initramfs)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "unpack: {}", text(&out.stderr));
    dir
}

/// `cpio -t` of the decompressed initramfs.
fn list_initramfs(image: &Image) -> BTreeSet<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | cpio -t --quiet")
        .arg("sh")
        .arg(&image.initramfs)
        .output()
        .unwrap();
    assert!(out.status.success(), "cpio -t: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

fn readelf(args: &[&str], file: &Path) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "readelf {args:?} {}", file.display());
    text(&out.stdout)
}

/// The bracketed values of readelf lines containing `marker`.
fn bracketed(listing: &str, marker: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            let start = l.rfind('[')? + 1;
            let end = l.rfind(']')?;
            Some(l[start..end].to_string())
        })
        .collect()
}

/// Resolve a path inside the unpacked image, following symlinks inside it (never the host's).
fn resolve_in(root: &Path, path: &str) -> Option<PathBuf> {
    let mut p = root.join(path.trim_start_matches('/'));
    for _ in 0..40 {
        let meta = std::fs::symlink_metadata(&p).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(p);
        }
        let target = std::fs::read_link(&p).ok()?;
        p = if target.is_absolute() {
            root.join(target.strip_prefix("/").ok()?)
        } else {
            p.parent()?.join(target)
        };
    }
    None
}

/// The directories glibc's loader searches when there is no ld.so.cache (as in the image).
const LIBRARY_DIRS: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib",
    "usr/lib",
];

fn is_elf(p: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            all_files(&entry.path(), out);
        } else if ty.is_file() {
            out.push(entry.path());
        }
    }
}

/// The `key=value` strings of a kernel module's .modinfo section.
fn modinfo(module: &Path, key: &str) -> Vec<String> {
    let bytes = std::fs::read(module).unwrap();
    let prefix = format!("{key}=");
    bytes
        .split(|&b| b == 0)
        .filter_map(|s| s.strip_prefix(prefix.as_bytes()))
        .map(text)
        .collect()
}

/// The kernel release a bzImage announces in its setup header (`kernel_version` at 0x20e).
fn bzimage_release(kernel: &Path) -> String {
    let bytes = std::fs::read(kernel).unwrap();
    assert_eq!(&bytes[0x202..0x206], b"HdrS", "not a bzImage");
    let offset = u16::from_le_bytes([bytes[0x20e], bytes[0x20f]]) as usize + 0x200;
    let version = &bytes[offset..offset + 128];
    let end = version.iter().position(|&b| b == 0 || b == b' ').unwrap();
    text(&version[..end])
}

#[test]
fn image_builds_and_holds_every_part() {
    if !require("linux_image_contents", BUILD_TOOLS) {
        return;
    }
    let image = shared_image();
    let listing = list_initramfs(image);
    for path in [
        "init",
        "bin/busybox",
        "sbin/dhclient",
        "usr/bin/iperf3",
        "sbin/ethtool",
        "etc/dhcp/dhclient.conf",
        "vnetbed/lib.sh",
        "vnetbed/agent.sh",
        "vnetbed/dhclient-hook.sh",
        "lib64/ld-linux-x86-64.so.2",
    ] {
        assert!(listing.contains(path), "{path} missing from {listing:?}");
    }

    // The modules belong to the kernel next to them.
    let release = bzimage_release(&image.kernel);
    let moddir = format!("lib/modules/{release}");
    for m in [
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_mmio.ko",
        "kernel/drivers/net/virtio_net.ko",
        "kernel/drivers/net/net_failover.ko",
        "kernel/net/core/failover.ko",
    ] {
        let p = format!("{moddir}/{m}");
        assert!(listing.contains(&p), "{p} missing from {listing:?}");
    }

    let root = unpack(image, "linux-image-unpacked");
    // Every module has the kernel's vermagic, and load-order puts dependencies first.
    let order = std::fs::read_to_string(root.join(&moddir).join("load-order")).unwrap();
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 6, "{order:?}");
    let mut loaded = BTreeSet::new();
    for m in &order {
        let file = root.join(&moddir).join(m);
        let vermagic = modinfo(&file, "vermagic");
        assert!(
            vermagic.len() == 1 && vermagic[0].starts_with(&format!("{release} ")),
            "{m}: vermagic {vermagic:?}, kernel {release}"
        );
        for dep in modinfo(&file, "depends")
            .iter()
            .flat_map(|d| d.split(','))
            .filter(|d| !d.is_empty())
        {
            assert!(
                loaded.contains(dep),
                "{m} needs {dep}, which load-order does not load before it: {order:?}"
            );
        }
        let name = m.rsplit('/').next().unwrap().trim_end_matches(".ko");
        loaded.insert(name.to_string());
    }
    // virtio_mmio binds the LNRO0005 devices of vnetbed's DSDT.
    let mmio = root
        .join(&moddir)
        .join("kernel/drivers/virtio/virtio_mmio.ko");
    assert!(
        modinfo(&mmio, "alias").contains(&"acpi*:LNRO0005:*".to_string()),
        "virtio_mmio.ko has no ACPI LNRO0005 alias"
    );

    // Every ELF program and library: its interpreter and each NEEDED library are in the image.
    let mut files = Vec::new();
    all_files(&root, &mut files);
    let mut checked = BTreeMap::new();
    for f in files.iter().filter(|f| is_elf(f)) {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        if rel.ends_with(".ko") {
            continue;
        }
        let dynamic = readelf(&["-d"], f);
        let needed = bracketed(&dynamic, "(NEEDED)");
        for lib in &needed {
            let found = LIBRARY_DIRS
                .iter()
                .any(|d| resolve_in(&root, &format!("{d}/{lib}")).is_some());
            assert!(found, "{rel} needs {lib}, which is not in the image");
        }
        for interp in bracketed(&readelf(&["-l"], f), "program interpreter") {
            let interp = interp.trim_start_matches("Requesting program interpreter: ");
            assert!(
                resolve_in(&root, interp).is_some(),
                "{rel}: interpreter {interp} is not in the image"
            );
        }
        checked.insert(rel, needed);
    }
    eprintln!("ELF files checked: {checked:?}");
    for prog in ["sbin/dhclient", "usr/bin/iperf3", "sbin/ethtool"] {
        assert!(
            checked
                .get(prog)
                .is_some_and(|n| n.contains(&"libc.so.6".to_string())),
            "{prog} is not a dynamically linked ELF: {checked:?}"
        );
    }
    assert!(checked["usr/bin/iperf3"].contains(&"libiperf.so.0".to_string()));
    assert!(checked.contains_key("usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
    let size = std::fs::metadata(&image.initramfs).unwrap().len();
    eprintln!("initramfs: {size} bytes, kernel {release}");
    let _ = std::fs::remove_dir_all(&root);
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    assert!(out.status.success());
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn two_builds_give_identical_images() {
    let mut caps = BUILD_TOOLS.to_vec();
    caps.push(Capability::Program("sha256sum"));
    if !require("linux_image_reproducible", &caps) {
        return;
    }
    let a = shared_image();
    // A second build in another directory, with its scratch space elsewhere too.
    let b = build_image(&scratch("linux-image-b"), &scratch("linux-image-b-tmp"));
    let (ha, hb) = (sha256(&a.initramfs), sha256(&b.initramfs));
    eprintln!("initramfs sha256: {ha} and {hb}");
    assert_eq!(ha, hb, "the initramfs differs between two builds");
    assert_eq!(sha256(&a.kernel), sha256(&b.kernel));
    for dir in ["linux-image-b", "linux-image-b-tmp"] {
        let _ = std::fs::remove_dir_all(scratch(dir));
    }
}

#[test]
fn agent_scripts_pass_the_busybox_syntax_check() {
    if !require("linux_agent_syntax", &[Capability::Program("busybox")]) {
        return;
    }
    let rootfs = linux_dir().join("rootfs");
    for script in [
        "init",
        "vnetbed/lib.sh",
        "vnetbed/agent.sh",
        "vnetbed/dhclient-hook.sh",
    ] {
        let out = Command::new("busybox")
            .args(["sh", "-n"])
            .arg(rootfs.join(script))
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
    }
    // A script with a syntax error is rejected, so the check above can fail.
    let dir = scratch("syntax");
    let bad = dir.join("bad.sh");
    std::fs::write(&bad, "if true; then\n  echo x\n").unwrap();
    let out = Command::new("busybox")
        .args(["sh", "-n"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The `@probe` JSON objects in some output.
fn probe_lines(output: &str) -> Vec<serde_json::Value> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("@probe "))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("bad @probe JSON {j:?}: {e}")))
        .collect()
}

/// Run the dhclient hook on the host under busybox sh, with dhclient's environment, in a
/// private network namespace holding a veth named eth0 (so its configuration touches nothing
/// of the host). Prints the hook's output, then `ADDR <ip -4 -o addr show dev eth0>`.
fn run_hook(calls: &[&[(&str, &str)]]) -> Output {
    let hook = linux_dir().join("rootfs/vnetbed/dhclient-hook.sh");
    let mut script = String::from("ip link add eth0 type veth peer name eth1 || exit 99\n");
    for env in calls.iter() {
        script.push_str("env -i");
        for (k, v) in env.iter() {
            script.push_str(&format!(" {k}='{v}'"));
        }
        script.push_str(&format!(
            " busybox sh {} || echo HOOK_EXIT $?\n",
            hook.display()
        ));
        script.push_str("echo ADDR $(ip -4 -o addr show dev eth0 | awk '{print $4}')\n");
    }
    Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .output()
        .unwrap()
}

#[test]
fn dhclient_hook_reports_each_state_and_configures_the_interface() {
    if !require(
        "linux_dhclient_hook",
        &[
            Capability::Root,
            Capability::Program("busybox"),
            Capability::Program("unshare"),
            Capability::Program("ip"),
        ],
    ) {
        return;
    }
    let bound: &[(&str, &str)] = &[
        ("reason", "BOUND"),
        ("interface", "eth0"),
        ("new_ip_address", "198.18.0.150"),
        ("new_subnet_mask", "255.255.255.0"),
        ("new_dhcp_lease_time", "120"),
        ("new_dhcp_renewal_time", "30"),
        ("new_dhcp_rebinding_time", "52"),
        ("new_dhcp_server_identifier", "198.18.0.1"),
    ];
    let renew: &[(&str, &str)] = &[
        ("reason", "RENEW"),
        ("interface", "eth0"),
        ("old_ip_address", "198.18.0.150"),
        ("new_ip_address", "198.18.0.150"),
        ("new_subnet_mask", "255.255.255.0"),
        ("new_dhcp_lease_time", "120"),
        ("new_dhcp_renewal_time", "30"),
        ("new_dhcp_rebinding_time", "52"),
        ("new_dhcp_server_identifier", "198.18.0.1"),
    ];
    let rebind: &[(&str, &str)] = &[
        ("reason", "REBIND"),
        ("interface", "eth0"),
        ("old_ip_address", "198.18.0.150"),
        ("new_ip_address", "198.18.0.151"),
        ("new_subnet_mask", "255.255.255.0"),
        ("new_dhcp_lease_time", "120"),
        ("new_dhcp_server_identifier", "198.18.0.1"),
    ];
    let expire: &[(&str, &str)] = &[
        ("reason", "EXPIRE"),
        ("interface", "eth0"),
        ("old_ip_address", "198.18.0.151"),
        ("old_subnet_mask", "255.255.255.0"),
    ];
    let fail: &[(&str, &str)] = &[("reason", "FAIL"), ("interface", "eth0")];
    let release: &[(&str, &str)] = &[
        ("reason", "RELEASE"),
        ("interface", "eth0"),
        ("old_ip_address", "198.18.0.151"),
    ];
    // Hostile values from a DHCP server never reach the JSON or the interface.
    let hostile: &[(&str, &str)] = &[
        ("reason", "BOUND"),
        ("interface", "eth0"),
        ("new_ip_address", "1.2.3.4\\\"},{\\\"x"),
        ("new_subnet_mask", "255.255.255.0"),
        ("new_dhcp_lease_time", "12a"),
        ("new_dhcp_renewal_time", "99999999999999999999999"),
        ("new_dhcp_server_identifier", "$(reboot)"),
    ];
    let out = run_hook(&[bound, renew, rebind, expire, fail, release, hostile]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\nstderr: {}",
        text(&out.stderr)
    );
    let events = probe_lines(&stdout);
    let addrs: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ADDR"))
        .map(str::trim)
        .collect();
    eprintln!("{stdout}");

    let dhcp: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "dhcp_state")
        .collect();
    assert_eq!(dhcp.len(), 7, "{stdout}");
    let b = dhcp[0];
    assert_eq!(b["state"], "bound");
    assert_eq!(b["reason"], "BOUND");
    assert_eq!(b["interface"], "eth0");
    assert_eq!(b["ip"], "198.18.0.150");
    assert_eq!(b["lease_s"], 120);
    assert_eq!(b["t1_s"], 30);
    assert_eq!(b["t2_s"], 52);
    assert_eq!(b["server"], "198.18.0.1");
    assert!(b["t_ms"].as_u64().is_some(), "{b}");
    assert_eq!(addrs[0], "198.18.0.150/24", "BOUND configures the address");

    // dhclient calls its script after a renewal succeeded: the client is bound again.
    assert_eq!(dhcp[1]["state"], "renewed");
    assert_eq!(addrs[1], "198.18.0.150/24");
    assert_eq!(dhcp[2]["state"], "rebound");
    assert_eq!(dhcp[2]["ip"], "198.18.0.151");
    assert_eq!(dhcp[2]["t1_s"], serde_json::Value::Null, "not sent: null");
    assert_eq!(
        addrs[2], "198.18.0.151/24",
        "a new address replaces the old"
    );
    assert_eq!(dhcp[3]["state"], "expired");
    assert_eq!(dhcp[3]["ip"], "198.18.0.151");
    assert_eq!(addrs[3], "", "EXPIRE removes the address");
    assert_eq!(dhcp[4]["state"], "failed");
    assert_eq!(dhcp[5]["state"], "released");

    let h = dhcp[6];
    assert_eq!(h["state"], "bound");
    assert_eq!(h["ip"], serde_json::Value::Null, "{h}");
    assert_eq!(h["lease_s"], serde_json::Value::Null, "{h}");
    assert_eq!(h["t1_s"], serde_json::Value::Null, "{h}");
    assert_eq!(h["server"], serde_json::Value::Null, "{h}");
    assert_eq!(addrs[6], "", "a bad address is not configured");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "error" && e["what"] == "dhcp_bad_address"),
        "{stdout}"
    );

    // The soak reads these lines: each state is a word its lease tracker knows, meaning what
    // dhclient's reason means.
    use vnetbed::record::LeaseState;
    use vnetbed::soak::dhcp_track::lease_state_from_word;
    let expected = [
        LeaseState::Bound,
        LeaseState::Bound,
        LeaseState::Bound,
        LeaseState::Expired,
        LeaseState::Expired,
        LeaseState::Expired,
        LeaseState::Bound,
    ];
    for (line, want) in dhcp.iter().zip(expected) {
        let word = line["state"].as_str().unwrap();
        assert_eq!(lease_state_from_word(word), Some(want), "{line}");
    }
}

#[test]
fn agent_counters_are_probe_json() {
    if !require("linux_agent_counters", &[Capability::Program("busybox")]) {
        return;
    }
    let lib = linux_dir().join("rootfs/vnetbed/lib.sh");
    let out = Command::new("busybox")
        .args([
            "sh",
            "-c",
            ". \"$1\"; probe_boot test; probe_counters lo; probe_counters nosuchif || echo MISSING",
        ])
        .arg("sh")
        .arg(&lib)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let events = probe_lines(&stdout);
    assert_eq!(events.len(), 2, "{stdout}");
    assert_eq!(events[0]["event"], "boot");
    assert_eq!(events[0]["stage"], "test");
    let c = &events[1];
    assert_eq!(c["event"], "counters");
    assert_eq!(c["interface"], "lo");
    for k in [
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "rx_dropped",
    ] {
        assert!(c[k].as_u64().is_some(), "{k} in {c}");
    }
    assert!(stdout.contains("MISSING"));
}

/// A child that is killed when the thread that spawned it ends (the test, even on panic).
fn spawn_tied(cmd: &mut Command) -> Child {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Kills and reaps a child when dropped.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's stdout, as they come.
fn line_channel(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait for a `@probe` line satisfying `want`, collecting everything seen.
fn wait_probe(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    limit: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let end = Instant::now() + limit;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        let line = rx.recv_timeout(left).ok()?;
        seen.push(line.clone());
        if let Some(j) = line.strip_prefix("@probe ") {
            let v: serde_json::Value =
                serde_json::from_str(j).unwrap_or_else(|e| panic!("bad @probe JSON {j:?}: {e}"));
            if want(&v) {
                return Some(v);
            }
        }
    }
    None
}

fn iperf3_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "iperf3: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("iperf3 -J prints JSON")
}

fn received_bits_per_second(report: &serde_json::Value) -> f64 {
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
}

/// The image's user space without a guest kernel: its init's DHCP and iperf3 parts run in a
/// chroot of the unpacked initramfs, in a private network, mount and pid namespace, with the
/// image's own dhclient, hook and iperf3 against the host's dnsmasq and iperf3 in a second
/// private namespace. Both namespaces die with the test process (pid namespaces, parent-death
/// signal), so nothing is left behind, even after SIGKILL.
#[test]
fn image_dhclient_gets_a_lease_from_dnsmasq_and_iperf3_runs_both_ways() {
    let mut caps = BUILD_TOOLS.to_vec();
    caps.extend([
        Capability::Root,
        Capability::Program("unshare"),
        Capability::Program("nsenter"),
        Capability::Program("chroot"),
        Capability::Program("ip"),
        Capability::Program("dnsmasq"),
        Capability::Program("iperf3"),
    ]);
    if !require("linux_image_userspace", &caps) {
        return;
    }
    let root = unpack(shared_image(), "linux-image-chroot");
    let guest_script = format!(
        "read go || exit 1; \
         mount -t proc proc {r}/proc && mount --rbind /dev {r}/dev && mount -t sysfs sysfs {r}/sys \
         && mount -t tmpfs tmpfs {r}/run && mount -t tmpfs tmpfs {r}/tmp || exit 1; \
         exec chroot {r} /bin/busybox sh -c '/bin/busybox --install -s; \
           export PATH=/sbin:/bin:/usr/sbin:/usr/bin; . /vnetbed/lib.sh; \
           ip link set lo up; ip link set eth0 up; \
           probe_dhclient_supervise eth0 & iperf3 -s -D && probe_boot iperf3_started; \
           while read cmd; do case $cmd in stop) kill $(cat /run/dhclient.pid);; counters) probe_counters eth0; probe_driver_stats eth0;; esac; done; sleep 5'",
        r = root.display()
    );
    let mut guest = Reaper(spawn_tied(
        Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private"])
            .args(["--pid", "--fork", "--kill-child"])
            .args(["sh", "-c", &guest_script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    ));
    let guest_pid = guest.0.id();
    let dnsmasq_dir = scratch("linux-chroot-dnsmasq");
    let leases = dnsmasq_dir.join("leases");
    let server_script = format!(
        "read go || exit 1; \
         ip addr add 198.18.0.1/24 dev vnbl0 && ip link set vnbl0 up && ip link set lo up \
         || exit 1; \
         exec dnsmasq --no-daemon --conf-file=/dev/null --interface=vnbl0 --bind-interfaces \
           --except-interface=lo --port=0 --no-ping --log-dhcp \
           --dhcp-range=198.18.0.100,198.18.0.200,2m \
           --dhcp-option=option:T1,30 --dhcp-option=option:T2,52 \
           --dhcp-leasefile={}",
        leases.display()
    );
    let mut server = Reaper(spawn_tied(
        Command::new("unshare")
            .args(["--net", "--pid", "--fork", "--kill-child"])
            .args(["sh", "-c", &server_script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    ));
    let server_pid = server.0.id();
    // The veth is created straight into the two private namespaces (named by the pids of the
    // unshare processes, which are inside them): it never exists in the host's namespace.
    // Wait until both unshare processes have entered their namespaces.
    let own_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let start = Instant::now();
    while [guest_pid, server_pid]
        .iter()
        .any(|p| std::fs::read_link(format!("/proc/{p}/ns/net")).ok() == Some(own_net.clone()))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "unshare did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let veth = Command::new("ip")
        .args(["link", "add", "vnbl0", "netns", &server_pid.to_string()])
        .args([
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &guest_pid.to_string(),
        ])
        .output()
        .unwrap();
    assert!(veth.status.success(), "veth: {}", text(&veth.stderr));
    let server_net = format!("--net=/proc/{server_pid}/ns/net");
    writeln!(server.0.stdin.take().unwrap(), "go").unwrap();
    let mut stdin = guest.0.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    let rx = line_channel(&mut guest.0);
    let mut seen = Vec::new();

    let bound = wait_probe(&rx, &mut seen, Duration::from_secs(60), |v| {
        v["event"] == "dhcp_state" && v["state"] == "bound"
    })
    .unwrap_or_else(|| panic!("no bound lease; guest output: {seen:#?}"));
    eprintln!("lease: {bound}");
    let ip = bound["ip"].as_str().unwrap().to_string();
    assert!(ip.starts_with("198.18.0."), "{bound}");
    assert_eq!(bound["server"], "198.18.0.1");
    assert_eq!(bound["lease_s"], 120);
    assert_eq!(bound["t1_s"], 30);
    assert_eq!(bound["t2_s"], 52);
    assert!(
        seen.iter()
            .any(|l| l.contains("\"event\":\"dhclient\",") && l.contains("\"running\"")),
        "{seen:#?}"
    );
    // iperf3 -s starts while dhclient is still asking, so its line may already be in `seen`.
    if !seen
        .iter()
        .any(|l| l.contains("\"stage\":\"iperf3_started\""))
    {
        wait_probe(&rx, &mut seen, Duration::from_secs(10), |v| {
            v["event"] == "boot" && v["stage"] == "iperf3_started"
        })
        .unwrap_or_else(|| panic!("iperf3 -s did not start: {seen:#?}"));
    }

    // The image's iperf3 as the server, the host's as the client, both directions.
    for reverse in [false, true] {
        let mut cmd = Command::new("nsenter");
        cmd.args([&server_net, "iperf3", "-c", &ip, "-t", "2", "-J"]);
        if reverse {
            cmd.arg("-R");
        }
        let report = iperf3_json(&cmd.output().unwrap());
        let bps = received_bits_per_second(&report);
        eprintln!(
            "iperf3 {}: {:.2} Gbit/s",
            if reverse {
                "image -> host"
            } else {
                "host -> image"
            },
            bps / 1e9
        );
        assert!(bps > 0.0, "{report}");
    }

    writeln!(stdin, "counters").unwrap();
    let counters = wait_probe(&rx, &mut seen, Duration::from_secs(10), |v| {
        v["event"] == "counters"
    })
    .unwrap_or_else(|| panic!("no counters: {seen:#?}"));
    assert!(
        counters["rx_bytes"].as_u64().unwrap() > 1_000_000,
        "iperf3 traffic is counted: {counters}"
    );
    // On the veth here, ethtool -S gives the veth driver's statistics under the same event.
    let stats = wait_probe(&rx, &mut seen, Duration::from_secs(10), |v| {
        v["event"] == "virtio_net"
    })
    .unwrap_or_else(|| panic!("no driver statistics: {seen:#?}"));
    assert!(stats["peer_ifindex"].as_u64().is_some(), "{stats}");

    // dhclient ending is reported with its exit status (SIGTERM: 128 + 15).
    writeln!(stdin, "stop").unwrap();
    let exited = wait_probe(&rx, &mut seen, Duration::from_secs(10), |v| {
        v["event"] == "dhclient" && v["state"] == "exited"
    })
    .unwrap_or_else(|| panic!("dhclient's exit was not reported: {seen:#?}"));
    assert_eq!(exited["status"], 143, "{exited}");
    drop(stdin);
    drop(server);
    drop(guest);
    // The mounts lived only in the guest's private mount namespace, which is gone.
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&dnsmasq_dir);
}

/// SIGTERM a `vnetbed run` child and return its output.
fn stop(child: Child) -> Output {
    // SAFETY: kill(2) on the pid of a child we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait_with_output().unwrap()
}

/// `vnetbed run` of the Linux image with 512 MiB, serial output to a file, and optionally a
/// NIC (the value of `--net`).
fn start_linux_guest(image: &Image, cmdline: &str, net: Option<&str>, serial: &Path) -> Child {
    let mut cmd = vnetbed();
    cmd.args(["run", "--kernel", image.kernel.to_str().unwrap()])
        .args(["--initrd", image.initramfs.to_str().unwrap()])
        .args(["--mem", "512", "--cmdline", cmdline])
        .args(["--serial", &format!("file:{}", serial.display())]);
    if let Some(net) = net {
        cmd.args(["--net", net]);
    }
    cmd.stderr(Stdio::piped()).spawn().unwrap()
}

/// The decompressor's line, printed because of `nokaslr` (Debian's cloud kernel is built
/// without X86_VERBOSE_BOOTUP, so it is the only line before decompression).
const DECOMPRESSOR_LINE: &str = "KASLR disabled: 'nokaslr' on cmdline.";

/// Wait until the serial file contains `needle`; false when the VMM ends first or after
/// `limit`. Guest ring 0 may be emulated (about 1 M instructions/s): early kernel lines take
/// seconds here, microseconds on hardware. The limit only keeps a broken boot from hanging
/// the suite.
fn wait_serial(serial: &Path, needle: &str, child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::fs::read_to_string(serial)
            .unwrap_or_default()
            .contains(needle)
        {
            eprintln!("{needle:?} after {:.1} s", start.elapsed().as_secs_f64());
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// SIGTERM the VMM and check that it shut down cleanly (status 10) after printing `needle`.
fn expect_line_then_clean_stop(child: Child, found: bool, serial: &Path) {
    let out = stop(child);
    assert!(
        found,
        "no decompressor line; serial: {:?}; stderr: {}",
        std::fs::read_to_string(serial),
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(10), "stderr: {}", text(&out.stderr));
}

#[test]
fn kernel_with_this_initramfs_starts_in_vnetbed() {
    let mut caps = BUILD_TOOLS.to_vec();
    caps.push(Capability::Kvm);
    if !require("linux_image_boot", &caps) {
        return;
    }
    let image = shared_image();
    let dir = scratch("linux-image-boot");
    let serial = dir.join("serial.txt");
    let mut child = start_linux_guest(
        image,
        "earlyprintk=serial nokaslr console=ttyS0",
        None,
        &serial,
    );
    let found = wait_serial(
        &serial,
        DECOMPRESSOR_LINE,
        &mut child,
        Duration::from_secs(180),
    );
    expect_line_then_clean_stop(child, found, &serial);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Holds a `vnetbed net up` testbed and takes it down when dropped.
struct TestbedGuard(String);

impl TestbedGuard {
    /// `vnetbed net up --name NAME --taps 1`.
    fn up(name: &str) -> TestbedGuard {
        let up = vnetbed()
            .args(["net", "up", "--name", name, "--taps", "1"])
            .output()
            .unwrap();
        let guard = TestbedGuard(name.to_string());
        assert!(up.status.success(), "net up: {}", text(&up.stderr));
        guard
    }

    /// The namespace, `vnetbed-NAME`.
    fn netns(&self) -> String {
        format!("vnetbed-{}", self.0)
    }

    /// The `--net` value for the testbed's first tap (`vnbNAMEt0`).
    fn net_arg(&self) -> String {
        format!("tap=vnb{}t0,netns={}", self.0, self.netns())
    }
}

impl Drop for TestbedGuard {
    fn drop(&mut self) {
        let _ = vnetbed().args(["net", "down", "--name", &self.0]).output();
    }
}

/// The end-to-end test's command line, verified where it can be: a testbed, the Linux image
/// with a virtio-net NIC on the testbed's tap (so the DSDT describes it as LNRO0005), the
/// decompressor line, a clean stop, the testbed down.
#[test]
fn linux_guest_with_a_testbed_nic_starts_in_vnetbed() {
    let mut caps = BUILD_TOOLS.to_vec();
    caps.extend([
        Capability::Kvm,
        Capability::Root,
        Capability::Tun,
        Capability::Program("ip"),
        Capability::Program("dnsmasq"),
    ]);
    if !require("linux_image_boot_nic", &caps) {
        return;
    }
    let image = shared_image();
    let testbed = TestbedGuard::up(&format!("ln{}", std::process::id() % 100_000));
    let dir = scratch("linux-image-boot-nic");
    let serial = dir.join("serial.txt");
    let mut child = start_linux_guest(
        image,
        "earlyprintk=serial nokaslr console=ttyS0",
        Some(&testbed.net_arg()),
        &serial,
    );
    let found = wait_serial(
        &serial,
        DECOMPRESSOR_LINE,
        &mut child,
        Duration::from_secs(180),
    );
    expect_line_then_clean_stop(child, found, &serial);
    drop(testbed);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Why Linux guests cannot run on this host, from `vnetbed doctor --json`, or None when
/// guest ring 0 runs in hardware.
fn doctor_says_ring0_is_emulated() -> Option<String> {
    let out = vnetbed().args(["doctor", "--json"]).output().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    match report["speed"]["ring0_emulated"].as_bool() {
        Some(false) => None,
        Some(true) => Some(
            report["verdict"]
                .as_str()
                .unwrap_or("guest kernel mode is emulated")
                .to_string(),
        ),
        None => Some(format!(
            "vnetbed doctor could not measure guest speed: {}",
            report["problems"]
        )),
    }
}

/// Whether a Linux guest test may run: the host capabilities (required under CI=true), and
/// hardware-assisted guest ring 0, without which it skips with the doctor's verdict even under
/// CI=true (by design, see below).
fn linux_guest_can_run(test: &str) -> bool {
    let mut caps = BUILD_TOOLS.to_vec();
    caps.extend([
        Capability::Kvm,
        Capability::Root,
        Capability::Tun,
        Capability::Program("ip"),
        Capability::Program("dnsmasq"),
        Capability::Program("iperf3"),
    ]);
    if !require(test, &caps) {
        return false;
    }
    if let Some(verdict) = doctor_says_ring0_is_emulated() {
        // Deliberately not common::require: this skip is by design, even under CI=true.
        eprintln!("SKIP {test}: {verdict}");
        return false;
    }
    true
}

/// The full Linux guest: boots to user space in vnetbed with a virtio-net NIC on a testbed
/// tap, gets a lease from the testbed's dnsmasq with dhclient, and serves iperf3 in both
/// directions.
///
/// It runs only where `vnetbed doctor` measures hardware-assisted guest ring 0. Issue 7 says so
/// explicitly: on hosts without hardware virtualization (like the development and CI machines,
/// see docs nested-kvm.md) these tests skip and print the doctor's reason, also under CI=true,
/// because a stock kernel needs minutes to decompress there and then dies in KVM's emulator.
#[test]
fn linux_guest_boots_gets_a_lease_and_serves_iperf3() {
    if !linux_guest_can_run("linux_guest_end_to_end") {
        return;
    }
    let image = shared_image();
    let testbed = TestbedGuard::up(&format!("lx{}", std::process::id() % 100_000));
    let netns = testbed.netns();
    let serial = scratch("linux-guest-e2e").join("serial.txt");
    let child = start_linux_guest(
        image,
        "console=ttyS0 panic=-1",
        Some(&testbed.net_arg()),
        &serial,
    );
    let guest = Reaper(child);
    let read_events = || probe_lines(&std::fs::read_to_string(&serial).unwrap_or_default());
    let start = Instant::now();
    let bound = loop {
        if let Some(b) = read_events()
            .into_iter()
            .find(|e| e["event"] == "dhcp_state" && e["state"] == "bound")
        {
            break b;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no lease; serial: {:?}",
            std::fs::read_to_string(&serial)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "guest bound {} after {:.1} s",
        bound,
        start.elapsed().as_secs_f64()
    );
    let events = read_events();
    for stage in ["init", "modules_loaded", "eth0_up"] {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "boot" && e["stage"] == stage),
            "no boot stage {stage}: {events:?}"
        );
    }
    let ip = bound["ip"].as_str().unwrap().to_string();
    for reverse in [false, true] {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns", "exec", &netns, "iperf3", "-c", &ip, "-t", "5", "-J",
        ]);
        if reverse {
            cmd.arg("-R");
        }
        let report = iperf3_json(&cmd.output().unwrap());
        let bps = received_bits_per_second(&report);
        eprintln!(
            "iperf3 {}: {:.2} Gbit/s",
            if reverse {
                "guest -> host"
            } else {
                "host -> guest"
            },
            bps / 1e9
        );
        assert!(bps > 0.0, "{report}");
    }
    let counters: Vec<_> = read_events()
        .into_iter()
        .filter(|e| e["event"] == "counters")
        .collect();
    assert!(
        counters
            .last()
            .is_some_and(|c| c["rx_bytes"].as_u64().unwrap_or(0) > 1_000_000),
        "{counters:?}"
    );
    let stats: Vec<_> = read_events()
        .into_iter()
        .filter(|e| e["event"] == "virtio_net")
        .collect();
    assert!(
        stats
            .last()
            .is_some_and(|s| s["rx_queue_0_packets"].as_u64().unwrap_or(0) > 0),
        "virtio_net statistics from ethtool -S: {stats:?}"
    );
    // A healthy guest renews at T1 (30 s on the testbed's one-minute schedule).
    let t1 = bound["t1_s"].as_u64().unwrap_or(30);
    let deadline = Instant::now() + Duration::from_secs(t1 + 30);
    while !read_events()
        .iter()
        .any(|e| e["event"] == "dhcp_state" && e["state"] == "renewed")
    {
        assert!(
            Instant::now() < deadline,
            "no renewal within T1 + 30 s: {:?}",
            read_events()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(guest);
}

/// `vnetbed reproduce` and `vnetbed verify` with the Linux guest (its real virtio_net driver
/// and dhclient, the 2012 incident's client). Like the end-to-end test above, this runs only
/// where `vnetbed doctor` measures hardware-assisted guest ring 0, and skips with the doctor's
/// reason elsewhere, also under CI=true (issue 7 asks for exactly that).
#[test]
fn linux_guest_reproduce_and_verify() {
    if !linux_guest_can_run("linux_guest_reproduce_and_verify") {
        return;
    }
    let image = shared_image();
    let dir = scratch("linux-guest-reproduce");
    let common = |cmd: &mut Command| {
        cmd.args(["--guest", "linux", "--quiet", "--mem", "512"])
            .arg("--kernel")
            .arg(&image.kernel)
            .arg("--initrd")
            .arg(&image.initramfs);
    };
    let mut reproduce = vnetbed();
    reproduce
        .arg("reproduce")
        .arg("--out")
        .arg(dir.join("reproduce"));
    reproduce.args([
        "--timeout",
        "10m",
        "--renew-after",
        "10s",
        "--rebind-after",
        "20s",
    ]);
    common(&mut reproduce);
    let out = reproduce.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "reproduce --guest linux: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let mut verify = vnetbed();
    verify
        .arg("verify")
        .arg("--out")
        .arg(dir.join("verify"))
        .args(["--runs", "2"]);
    common(&mut verify);
    let out = verify.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify --guest linux: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
