//! The records of `timeline.jsonl`, schema `vnetbed.timeline/1`.
//!
//! The file is JSON lines. The first line is a [`RunHeader`]; every later line is one
//! [`Record`], tagged by `"record"`. Times are `t` (wall clock, seconds since the Unix epoch)
//! and `elapsed` (seconds since the run started); every other time in a record is also
//! run-elapsed seconds. Counters are cumulative since their source started (the VMM, the
//! guest); a counter that goes down means its source restarted.
//!
//! Compatibility: readers ignore fields they do not know, so adding an optional field keeps
//! the schema at `/1`; removing or changing the meaning of a field bumps it.

use serde::{Deserialize, Serialize};

/// The schema name and version written in every header.
pub const TIMELINE_SCHEMA: &str = "vnetbed.timeline/1";

/// One line of the timeline after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// The run header (only as the first line).
    Header(RunHeader),
    /// The once-per-second measurements.
    Sample(Sample),
    /// A stall the VMM's watchdog detected, written as soon as it is known.
    Stall(Stall),
    /// A DHCP exchange, written once its outcome is known.
    Dhcp(DhcpExchange),
    /// The VMM process ended.
    VmmExit(VmmExit),
    /// A free-form observation (dnsmasq restarted, iperf3 run failed to start, ...).
    Note(Note),
    /// A vhost-user backend went away or came back (the VMM reconnects with
    /// `reconnect=SECS`): reported, and not a stall.
    Backend(BackendRecord),
    /// The orchestrator finished the run (absent after a SIGKILL).
    End(RunEnd),
}

/// The first line: what was run, how, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    /// Always [`TIMELINE_SCHEMA`] for this version.
    pub schema: String,
    /// The vnetbed version that wrote the record.
    pub vnetbed_version: String,
    /// The command line, one argument per element.
    pub command: Vec<String>,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix: f64,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// The run's configuration.
    pub config: RunConfig,
    /// The host it ran on.
    pub host: HostInfo,
    /// What exactly ran: vnetbed's build, the guest image's digest, the host tools' versions.
    /// Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Box<Identity>>,
}

/// What was tested: vnetbed's build, the guest image, the host tools, and the VMMs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// vnetbed's version.
    pub vnetbed_version: String,
    /// The git revision vnetbed was built from, when known.
    #[serde(default)]
    pub revision: Option<String>,
    /// Whether that build had uncommitted changes to tracked files, when known.
    #[serde(default)]
    pub dirty: Option<bool>,
    /// The guest kernel image.
    #[serde(default)]
    pub kernel: Option<String>,
    /// Its SHA-256, when it could be read.
    #[serde(default)]
    pub kernel_sha256: Option<String>,
    /// `dnsmasq`'s and `iperf3`'s first version line, by program.
    #[serde(default)]
    pub tools: std::collections::BTreeMap<String, String>,
    /// The host: kernel and CPU.
    #[serde(default)]
    pub host: Option<HostInfo>,
    /// verify: the system under test in one line (`vnetbed (virtio-queue 0.18.0 (crates.io))`,
    /// `QEMU /usr/bin/qemu-system-x86_64 (q35, virtio-net-pci)`).
    #[serde(default)]
    pub sut: Option<String>,
    /// verify: the system under test's VMM binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sut_vmm: Option<VmmIdentity>,
    /// verify: the positive control's VMM binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_vmm: Option<VmmIdentity>,
}

/// The VMM binary a run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VmmIdentity {
    /// The system-under-test spec (`vnetbed:fenced`, `qemu=/opt/q/bin/qemu-system-x86_64,...`).
    pub spec: String,
    /// The binary's path.
    #[serde(default)]
    pub path: Option<String>,
    /// Its SHA-256.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The first line of its `--version` (vnetbed: its version and git revision).
    #[serde(default)]
    pub version: Option<String>,
    /// The machine (`vnetbed`, `q35`, `pc`, `microvm`).
    pub machine: String,
    /// The virtio-net device and its options.
    pub device: String,
}

/// The run's configuration, as the user asked for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The guest image (`probe`, `linux`).
    pub guest: String,
    /// The device's notify model (`fenced`, `unfenced`, `no-recheck`, `virtio-queue`), or
    /// `qemu` when QEMU's own device runs.
    pub notify_model: String,
    /// The system under test's spec (`vnetbed:fenced`, `qemu,machine=q35,...`); absent in
    /// records from before `--sut` (then vnetbed with `notify_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sut: Option<String>,
    /// The VMM binary that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm: Option<Box<VmmIdentity>>,
    /// The queue implementation under test: `vnetbed` (vnetbed's own queue), or
    /// `virtio-queue VERSION (SOURCE)`, the rust-vmm crate linked into this build, with where
    /// Cargo took it from (`crates.io`, `path` for a `[patch.crates-io]` checkout, a git URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_backend: Option<String>,
    /// The race window, as given (for example `"2us"`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race_window: Option<String>,
    /// The load (`udp`, `tcp`, `tcp-reverse`, `mixed`, `none`).
    pub load: String,
    /// The load's rate, as given to iperf3 (for example `"200M"`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// The planned duration in seconds (absent: until a stall or a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// The throughput floor in bits/s: the median total throughput while load runs must reach
    /// it. Absent: the throughput check is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_floor_bps: Option<f64>,
    /// `vnetbed verify`'s name for this run (`A1-unfenced`, `B-fenced`); absent outside verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// A control run: the buggy model, expected to stall (verify's A runs). Its reports judge
    /// that it stalled, not that it did not. Absent: `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expect_stall: bool,
    /// How the run shaped its exposure to the races (queue size, bursts, guest options);
    /// absent: the defaults of the VMM, the load and the guest.
    #[serde(default, skip_serializing_if = "Shaping::is_default")]
    pub shaping: Shaping,
    /// `--pin-vcpu`: whether QEMU's vCPU thread was asked to be, and is, pinned to one CPU
    /// and its other threads to another. Absent: not a QEMU run (or a record from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_vcpu: Option<VcpuPinning>,
}

/// `--pin-vcpu` as asked and as applied (a host with one CPU cannot pin apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuPinning {
    /// `--pin-vcpu on` (the default for QEMU).
    pub asked: bool,
    /// Whether the run pins: asked, QEMU, and two CPUs to pin apart on. Whether the
    /// threads were found and pinned is a note in the record (`pin-vcpu: ...`).
    pub applied: bool,
    /// Why not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The CPU of QEMU's vCPU thread(s), when applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu_cpu: Option<usize>,
    /// The CPU of QEMU's other threads (its main loop, where virtio-net's rx runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpu: Option<usize>,
}

/// The settings that decide how often the notification races get a chance: how short the
/// rings are, how the load arrives and how the guest refills (`--queue-size`, `--burst`,
/// `--guest-cmdline`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shaping {
    /// The guest's virtqueue size: both queues of vnetbed's device, QEMU's
    /// `rx_queue_size`. Absent: the VMM's default (vnetbed 256; QEMU 1024 here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u16>,
    /// Datagrams per burst of the `udp-burst` load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Words added to the guest's kernel command line (the probe's `probe.NAME=VALUE`
    /// options, such as its refill policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_cmdline: Option<String>,
}

impl Shaping {
    /// No setting differs from the defaults.
    pub fn is_default(&self) -> bool {
        *self == Shaping::default()
    }

    /// One line for people: `queue 32, bursts of 48, guest: probe.refill=half`, or
    /// `defaults`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(q) = self.queue_size {
            parts.push(format!("queue {q}"));
        }
        if let Some(b) = self.burst {
            parts.push(format!("bursts of {b}"));
        }
        if let Some(c) = &self.guest_cmdline {
            parts.push(format!("guest: {c}"));
        }
        if parts.is_empty() {
            "defaults".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The host the run was recorded on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU model name from /proc/cpuinfo.
    pub cpu_model: String,
    /// Number of online CPUs.
    pub nproc: u32,
}

/// The once-per-second measurements. Every group is optional: a monitor that has nothing for
/// this second leaves its field out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Wall clock, seconds since the Unix epoch.
    pub t: f64,
    /// Seconds since the run started.
    pub elapsed: f64,
    /// iperf3 throughput during this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    /// The ping sent this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<Ping>,
    /// DHCP exchanges that completed (or timed out) in this second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dhcp: Vec<DhcpExchange>,
    /// The guest's DHCP lease state at the end of this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseState>,
    /// The device's counters (cumulative), from the VMM's event stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceCounters>,
    /// The guest driver's counters (cumulative), from its `@probe` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestCounters>,
    /// Stalls detected in this second that were not already written as [`Record::Stall`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stalls: Vec<Stall>,
    /// The VMM's exit, when it happened this second and was not written as
    /// [`Record::VmmExit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm_exit: Option<VmmExit>,
    /// Free-form notes for this second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The resources of the run's processes (VMM, dnsmasq, orchestrator), every few seconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ProcessResources>,
}

/// One process's resources at one moment, from /proc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessResources {
    /// Which process: `vmm`, `dnsmasq` or `orchestrator`.
    pub process: String,
    /// Its pid (a restarted dnsmasq has a new one).
    pub pid: u32,
    /// Resident memory, KiB (`VmRSS`; the VMM's includes the guest RAM it has touched).
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// CPU time, user plus system, seconds since the process started.
    pub cpu_s: f64,
}

/// iperf3 throughput in one second, per direction, in bits/s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Host (namespace) → guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_guest_bps: Option<f64>,
    /// Guest → host (namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_guest_bps: Option<f64>,
    /// The iperf3 run (1, 2, ...) this second belongs to; absent between runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iperf_run: Option<u64>,
}

/// One ping of the guest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// Round-trip time in milliseconds; absent when lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// No reply within the interval.
    pub lost: bool,
}

/// The kind of a DHCP exchange, from the client's state when it sent its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DhcpPhase {
    /// DISCOVER / OFFER.
    Discover,
    /// REQUEST in SELECTING or INIT-REBOOT state (getting a first lease).
    Request,
    /// REQUEST in RENEWING state (unicast to the server at T1).
    Renew,
    /// REQUEST in REBINDING state (broadcast at T2).
    Rebind,
    /// RELEASE, DECLINE, INFORM.
    Other,
}

impl DhcpPhase {
    /// Renewals are the exchanges the "every renewal answered and received" check covers.
    pub fn is_renewal(self) -> bool {
        matches!(self, DhcpPhase::Renew | DhcpPhase::Rebind)
    }
}

/// One DHCP exchange: the guest's request and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpExchange {
    /// Seconds since the run started at which the request was seen.
    pub at: f64,
    /// What the client was doing.
    pub phase: DhcpPhase,
    /// The request's message type (`discover`, `request`, `release`, ...).
    pub message: String,
    /// The transaction id, when known (hex, as dnsmasq logs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<String>,
    /// The client's MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The address requested or offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The server's answer (`offer`, `ack`, `nak`); absent when it did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Whether the guest reported receiving the answer; absent when not known (also when a
    /// missing receipt is put down to host congestion, see `host_dropped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_by_guest: Option<bool>,
    /// When the server's answer was seen, seconds since the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replied_at: Option<f64>,
    /// Frames the host's tap dropped toward the guest (its queue was full) while this answer
    /// was in flight, when the guest never confirmed it and no stall had been seen: the
    /// answer was most likely lost to congestion on a busy host, not to a lost notification,
    /// so the receipt is left unknown rather than failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_dropped: Option<u64>,
}

/// The guest's DHCP client state (RFC 2131 §4.4), as the guest reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// No lease, not yet asking.
    Init,
    /// Looking for a server.
    Selecting,
    /// Asking for the offered address.
    Requesting,
    /// Holds a lease.
    Bound,
    /// Past T1, asking its server to extend.
    Renewing,
    /// Past T2, asking any server to extend.
    Rebinding,
    /// The lease ran out; the address is gone.
    Expired,
}

impl LeaseState {
    /// Whether the guest holds an address in this state.
    pub fn holds_address(self) -> bool {
        matches!(
            self,
            LeaseState::Bound | LeaseState::Renewing | LeaseState::Rebinding
        )
    }
}

/// Counters of the virtio-net device, from the VMM's event stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceCounters {
    /// One entry per virtqueue.
    pub queues: Vec<QueueCounters>,
}

/// Cumulative counters of one virtqueue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueCounters {
    /// The queue's name: `rx` or `tx` (with a suffix for multiqueue: `rx1`, ...).
    pub queue: String,
    /// Frames moved.
    #[serde(default)]
    pub frames: u64,
    /// Bytes moved.
    #[serde(default)]
    pub bytes: u64,
    /// Kicks (queue notifications) received from the guest.
    #[serde(default)]
    pub kicks: u64,
    /// Interrupts sent to the guest.
    #[serde(default)]
    pub interrupts_sent: u64,
    /// Interrupts suppressed by the guest's flags or `used_event`.
    #[serde(default)]
    pub interrupts_suppressed: u64,
    /// Times the device found the ring empty.
    #[serde(default)]
    pub ring_empty: u64,
    /// Times the device enabled notifications (on rx: after finding the ring empty; each one
    /// is one exposure to the lost-kick race).
    #[serde(default)]
    pub notify_enables: u64,
    /// Race windows the notify model opened (`--race-window`).
    #[serde(default)]
    pub race_windows: u64,
    /// EAGAIN from the tap.
    #[serde(default)]
    pub tap_eagain: u64,
    /// Frames dropped.
    #[serde(default)]
    pub drops: u64,
}

/// Cumulative counters of the guest's virtio-net driver, from its `@probe` lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestCounters {
    /// Packets received.
    #[serde(default)]
    pub rx_packets: u64,
    /// Bytes received.
    #[serde(default)]
    pub rx_bytes: u64,
    /// Packets sent.
    #[serde(default)]
    pub tx_packets: u64,
    /// Bytes sent.
    #[serde(default)]
    pub tx_bytes: u64,
    /// Rx buffers refilled.
    #[serde(default)]
    pub refills: u64,
    /// Kicks sent to the device.
    #[serde(default)]
    pub kicks_sent: u64,
    /// Kicks suppressed by the device's flags or `avail_event`.
    #[serde(default)]
    pub kicks_suppressed: u64,
    /// Interrupts taken.
    #[serde(default)]
    pub interrupts: u64,
    /// Poll passes over the used rings.
    #[serde(default)]
    pub polls: u64,
    /// Times the driver found its rx ring without buffers: the device had run dry, and
    /// asked for a kick (one chance for the lost-kick race, seen from the guest).
    #[serde(default)]
    pub ring_empty: u64,
    /// Times the driver re-enabled rx interrupts after a poll round (`enable_cb`): each is
    /// one rx interrupt decision the device must get right (one chance for the lost-interrupt
    /// race, seen from the guest).
    #[serde(default)]
    pub rx_cb_enables: u64,
    /// `enable_cb` re-checks that found work raced in (the fix's re-check at work).
    #[serde(default)]
    pub rx_rechecks: u64,
}

/// The kind of a lost notification: the VMM's event type, shared with the record.
pub use vmm::events::StallKind;

/// Who detected a stall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallSource {
    /// vnetbed's device watchdog, which sees the device's own state.
    #[default]
    Device,
    /// The probe guest's stall detector, confirmed by host evidence (any VMM).
    Guest,
}

/// A stall signature, from vnetbed's device watchdog or the guest's detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// Who detected it; absent in older records: the device.
    #[serde(default)]
    pub source: StallSource,
    /// The queue (`rx`, `tx`).
    pub queue: String,
    /// Lost kick or lost interrupt.
    pub kind: StallKind,
    /// When it was detected (run-elapsed seconds).
    pub detected_at: f64,
    /// Since when the queue has not progressed (run-elapsed seconds).
    pub stalled_since: f64,
    /// The device's `next_avail`. From the guest's detector: the device's `avail_event` as the
    /// guest read it (with EVENT_IDX, where the device says it is).
    pub device_next_avail: u16,
    /// The device's `next_used`. From the guest's detector: `used->idx` as the guest read it.
    pub device_next_used: u16,
    /// From the guest's detector: the used index the driver had consumed up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_last_used_idx: Option<u16>,
    /// From the guest's detector: what the host saw that confirms it (the tap's counters
    /// while the stall held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_evidence: Option<String>,
    /// The guest's `avail->idx`, read when detected.
    pub guest_avail_idx: u16,
    /// The guest's `used_event`, read when detected (absent without EVENT_IDX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_used_event: Option<u16>,
    /// The guest's `avail->flags`, read when detected.
    pub guest_avail_flags: u16,
    /// The last kick the device received (run-elapsed seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_kick_at: Option<f64>,
    /// The last interrupt the device sent (run-elapsed seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_interrupt_at: Option<f64>,
}

impl Stall {
    /// A one-line human description of the signature.
    pub fn signature(&self) -> String {
        let used_event = self
            .guest_used_event
            .map_or_else(|| "-".to_string(), |v| v.to_string());
        let source = match self.source {
            StallSource::Device => "",
            StallSource::Guest => " (guest detector)",
        };
        format!(
            "{}{source} on {}: device next_avail={} next_used={}, guest avail_idx={} used_event={} flags={:#x}",
            self.kind.as_str(),
            self.queue,
            self.device_next_avail,
            self.device_next_used,
            self.guest_avail_idx,
            used_event,
            self.guest_avail_flags
        )
    }
}

/// The VMM process ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmmExit {
    /// When it ended (run-elapsed seconds).
    pub at: f64,
    /// Its exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// The signal that killed it, when killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why, in words (`"killed by SIGKILL"`, `"stall watchdog: --on-stall exit"`, `"hung: no
    /// events for 10 s"`, `"stopped by the orchestrator"`).
    pub cause: String,
    /// Whether the orchestrator asked for it (the normal end of a run).
    pub expected: bool,
    /// The VMM's last events, as it emitted them (newest last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_events: Vec<serde_json::Value>,
}

/// A vhost-user backend went away (`disconnected`) or came back (`reconnected`), from the
/// VMM's `backend` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendRecord {
    /// When the VMM said so (run-elapsed seconds).
    pub at: f64,
    /// `disconnected` or `reconnected`.
    pub state: BackendState,
    /// The VMM's words.
    pub message: String,
    /// `reconnected`: how long the backend was away, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
}

pub use vmm::events::BackendState;

/// A free-form observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// When (run-elapsed seconds).
    pub at: f64,
    /// What happened.
    pub text: String,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Ran for its planned duration (or until its goal, for `reproduce`).
    Completed,
    /// Stopped early by SIGINT/SIGTERM; the record is what was measured until then.
    Interrupted,
    /// The orchestrator itself failed (testbed setup, a missing tool, ...).
    Error,
}

/// The last line the orchestrator writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// Wall clock, seconds since the Unix epoch.
    pub t: f64,
    /// Seconds since the run started.
    pub elapsed: f64,
    /// How the run ended.
    pub outcome: RunOutcome,
    /// The error, for [`RunOutcome::Error`], or the signal, for [`RunOutcome::Interrupted`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The run's size-bounded logs (`serial.log`, `vmm-events.jsonl`): what they wrote and kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogTotal>,
}

/// What one size-bounded log wrote over the run, and what it kept on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogTotal {
    /// The file name in the run directory (its previous part is `FILE.1`).
    pub file: String,
    /// Bytes written over the whole run.
    pub written_bytes: u64,
    /// Bytes on disk at the end (FILE and FILE.1).
    pub kept_bytes: u64,
    /// How many times it was rotated.
    pub rotations: u64,
}
