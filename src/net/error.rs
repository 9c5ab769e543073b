//! Errors of the testbed network. Each message says what went wrong and what to do.

use std::path::PathBuf;

/// Result of testbed network operations.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// What can go wrong while building, running or removing a testbed network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The process lacks the privileges to create namespaces, bridges and taps.
    #[error(
        "vnetbed net needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create and remove network \
         namespaces, bridges and taps; effective uid is {euid}{missing}. Run it with sudo or as \
         root"
    )]
    NotPrivileged {
        /// Effective uid of the process.
        euid: u32,
        /// Which capabilities are missing, as text (empty when only the uid is the problem).
        missing: String,
    },
    /// A required program is not on PATH.
    #[error(
        "`{program}` was not found on PATH; install the Debian package `{package}` \
             (apt-get install {package}), or add its directory (usually /usr/sbin) to PATH"
    )]
    ProgramMissing {
        /// The program looked for.
        program: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The testbed name is not usable.
    #[error("bad testbed name {name:?}: {why}. Use 1-8 characters from a-z, 0-9 and '-'")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The number of taps is out of range.
    #[error("--taps {taps} is out of range: a testbed has 1 to 999 taps (tap names end in a 3-digit index)")]
    BadTapCount {
        /// The number asked for.
        taps: u32,
    },
    /// A testbed of that name already exists (namespace or state directory).
    #[error(
        "testbed name {name:?} is already in use ({what}); pick another --name, or remove \
             it with `vnetbed net down --name {name}` (or `vnetbed net gc` if its holder died)"
    )]
    NameInUse {
        /// The testbed name.
        name: String,
        /// What exists already.
        what: String,
    },
    /// The subnet is not a usable IPv4 CIDR.
    #[error(
        "bad subnet {subnet:?}: {why}. Give an IPv4 network in CIDR form with a prefix \
             from /8 to /28, e.g. 198.18.0.0/24"
    )]
    BadSubnet {
        /// The subnet given.
        subnet: String,
        /// What is wrong with it.
        why: String,
    },
    /// The lease schedule (lease, T1, T2) is inconsistent.
    #[error("bad lease schedule: {0}")]
    BadSchedule(String),
    /// A tap is already attached to another process.
    #[error(
        "tap {tap} in testbed {testbed} is in use by another process (a VMM still running?); \
             stop that process or use another tap of the testbed (see `vnetbed net status`)"
    )]
    TapInUse {
        /// The testbed name.
        testbed: String,
        /// The tap name.
        tap: String,
    },
    /// The tap does not exist in the testbed.
    #[error("tap {tap} does not exist in testbed {testbed}; see `vnetbed net status --name {testbed}` for its taps")]
    NoSuchTap {
        /// The testbed name.
        testbed: String,
        /// The tap name.
        tap: String,
    },
    /// No testbed of that name is running.
    #[error("no testbed named {0:?} is running (see `vnetbed net status`, or `vnetbed net gc` for leftovers)")]
    NotRunning(String),
    /// An `ip` invocation failed.
    #[error("`ip {args}` failed ({status}): {stderr}")]
    IpFailed {
        /// The arguments, space separated.
        args: String,
        /// The exit status.
        status: String,
        /// What `ip` wrote to stderr.
        stderr: String,
    },
    /// dnsmasq did not come up.
    #[error("dnsmasq did not start in testbed {testbed}: {why}; its output was:\n{output}")]
    DnsmasqStart {
        /// The testbed name.
        testbed: String,
        /// What happened.
        why: String,
        /// dnsmasq's stderr lines.
        output: String,
    },
    /// The detached supervisor failed or did not report.
    #[error("the testbed supervisor for {name:?} failed: {why}")]
    Supervisor {
        /// The testbed name.
        name: String,
        /// What happened.
        why: String,
    },
    /// The detached supervisor's own error, passed on as it reported it.
    #[error("{0}")]
    Reported(String),
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `gc` removed what it could, but some leftovers could not be removed.
    #[error(
        "{count} leftover(s) could not be removed: {details}; fix the cause and run \
         `vnetbed net gc` again (as root)"
    )]
    GcIncomplete {
        /// How many removals failed.
        count: usize,
        /// Each failure, `name: error`, separated by `; `.
        details: String,
    },
    /// A state file could not be read.
    #[error("state file {path} is unreadable: {why}; remove the testbed with `vnetbed net gc`")]
    BadStateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl NetError {
    /// An [`NetError::Io`] with a description of what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        NetError::Io {
            what: what.into(),
            source,
        }
    }
}
