//! The allow-lists, one per thread kind, collected with `strace -f` of real runs (the probe
//! guest under iperf3 load in a testbed, stalls reported, `--on-stall exit`, SIGTERM, reset,
//! triple fault, serial to stdout and to a file, `--events`) and checked by the end-to-end
//! tests, which run every `vnetbed run` confined.
//!
//! Arguments are filtered only where every legitimate value is known: `ioctl` requests on
//! the vCPU thread, `prctl` options, `seccomp` operations, `tgkill`'s signal and `fcntl`'s
//! command. Everything else is allowed by number.
//!
//! A thread inherits its creator's filter and adds its own: the device worker, started by a
//! vCPU thread when the guest sets DRIVER_OK, runs under both, so the vCPU list includes
//! the worker's.

use std::collections::BTreeMap;

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::ThreadKind;

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// What every thread may do: allocate, synchronise, tell the time, handle and return from
/// signals (SIGINT/SIGTERM and the vCPU kick can land on any thread), log to stderr, exit.
const COMMON: &[i64] = &[
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    // The vDSO answers these, except on hosts whose clocksource it cannot read.
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_getrandom,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_write,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The main thread once the guest runs: wait on the exit eventfd, kick and join the vCPU
/// threads, read the VMM's RSS from the /proc/self/smaps it opened before, write the exit
/// event, drop the VM (closes, unmaps), print and exit.
const MAIN: &[i64] = &[libc::SYS_read, libc::SYS_lseek, libc::SYS_close];

/// The device worker: its epoll loop over the tap, kick eventfds and timerfds (the stall
/// watchdog ticks on one), created when it starts.
const DEVICE_WORKER: &[i64] = &[
    libc::SYS_read,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_timerfd_gettime,
    libc::SYS_close,
];

/// The vCPU thread beyond the worker's list: at DRIVER_OK it creates the kick eventfds and
/// clones them, starts the worker thread (which confines itself); at reset it stops it.
const VCPU: &[i64] = &[
    libc::SYS_eventfd2,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_getaffinity,
];

/// The stall-exit thread: poll the stall eventfd, then write the VM's exit eventfd; and
/// `close`: when the VM ends, the thread returns and drops its handles, and if the main
/// thread has already dropped its own, the stall eventfd is closed here (a CI run's
/// SIGTERM of a Linux guest died of exactly that: exit status 12 instead of 10).
const STALL_EXIT: &[i64] = &[libc::SYS_poll, libc::SYS_ppoll, libc::SYS_close];

/// The vhost-user relay: its epoll loop over eventfds, the backend's socket and a timerfd
/// (created before it confines itself), and the vhost-user messages it sends and receives
/// on the socket it was given (never a new socket); and the deadline thread beside it, which
/// shuts that socket down when the backend does not answer in time.
const VHOST_USER: &[i64] = &[
    libc::SYS_shutdown,
    libc::SYS_read,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_timerfd_settime,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_recvfrom,
    libc::SYS_close,
];

/// The vhost-user reconnecting thread: beyond the relay's messages, connect a new `AF_UNIX`
/// socket to the backend (`socket` is filtered to `AF_UNIX`), duplicate it for the deadline
/// thread and start that thread (which confines itself), wait between attempts, and wake
/// the relay (an eventfd write).
const VHOST_RECONNECT: &[i64] = &[
    libc::SYS_connect,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_getaffinity,
];

/// `fcntl` commands that only read a descriptor's flags (std checks that a descriptor it
/// closes is open, in builds with debug assertions).
const FCNTL_CHECKS: &[u64] = &[libc::F_GETFD as u64, libc::F_GETFL as u64];

/// `_IOR(KVMIO, nr, size)`.
fn kvm_ior(nr: u64, size: usize) -> u64 {
    (2 << 30) | ((size as u64) << 16) | (0xae << 8) | nr
}

/// `_IOW(KVMIO, nr, size)`.
fn kvm_iow(nr: u64, size: usize) -> u64 {
    (1 << 30) | ((size as u64) << 16) | (0xae << 8) | nr
}

/// The vCPU's ioctls: KVM_RUN, and the register reads of a triple fault or internal error;
/// for PCI functions, KVM_SET_GSI_ROUTING (the guest programs an MSI-X vector) and
/// KVM_IOEVENTFD (the guest moves the BAR with the notify addresses), both on the VM
/// descriptor.
fn vcpu_ioctls() -> Vec<u64> {
    vec![
        0xae80,
        kvm_ior(0x81, std::mem::size_of::<kvm_bindings::kvm_regs>()),
        kvm_ior(0x83, std::mem::size_of::<kvm_bindings::kvm_sregs>()),
        kvm_iow(0x6a, std::mem::size_of::<kvm_bindings::kvm_irq_routing>()),
        kvm_iow(0x79, std::mem::size_of::<kvm_bindings::kvm_ioeventfd>()),
    ]
}

fn cond(arg: u8, value: u64) -> SeccompCondition {
    // Only fails for an argument index above 5.
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .expect("argument index <= 5")
}

fn one_of(arg: u8, values: &[u64]) -> Vec<SeccompRule> {
    values
        .iter()
        .map(|&v| SeccompRule::new(vec![cond(arg, v)]).expect("one condition"))
        .collect()
}

fn allow(rules: &mut Rules, list: &[i64]) {
    for &nr in list {
        rules.insert(nr, Vec::new());
    }
}

/// What a thread needs to duplicate a descriptor (`fcntl` F_DUPFD_CLOEXEC, beside the
/// descriptor checks) and to start a thread that confines itself: its name, then its own
/// filter (`prctl` PR_SET_NAME and PR_SET_NO_NEW_PRIVS, `seccomp` SET_MODE_FILTER), which can
/// only narrow what the new thread may do.
fn allow_fd_clones_and_confined_threads(r: &mut Rules) {
    r.insert(
        libc::SYS_fcntl,
        one_of(1, &[FCNTL_CHECKS, &[libc::F_DUPFD_CLOEXEC as u64]].concat()),
    );
    r.insert(
        libc::SYS_prctl,
        one_of(
            0,
            &[libc::PR_SET_NAME as u64, libc::PR_SET_NO_NEW_PRIVS as u64],
        ),
    );
    r.insert(
        libc::SYS_seccomp,
        one_of(0, &[libc::SECCOMP_SET_MODE_FILTER as u64]),
    );
}

/// The rules of `kind`: system call number to argument rules (empty: any arguments).
pub(super) fn rules(kind: ThreadKind) -> Rules {
    let mut r = Rules::new();
    allow(&mut r, COMMON);
    r.insert(libc::SYS_fcntl, one_of(1, FCNTL_CHECKS));
    match kind {
        ThreadKind::Main => {
            allow(&mut r, MAIN);
            // Kick the vCPU threads out of KVM_RUN, with the kick signal only.
            r.insert(
                libc::SYS_tgkill,
                one_of(2, &[crate::vcpu::kick_signal() as u64]),
            );
        }
        ThreadKind::Vcpu => {
            allow(&mut r, DEVICE_WORKER);
            allow(&mut r, VCPU);
            r.insert(libc::SYS_ioctl, one_of(1, &vcpu_ioctls()));
            // EventFd::try_clone, and the worker thread's start.
            allow_fd_clones_and_confined_threads(&mut r);
        }
        ThreadKind::DeviceWorker => allow(&mut r, DEVICE_WORKER),
        ThreadKind::StallExit => allow(&mut r, STALL_EXIT),
        ThreadKind::VhostUser => allow(&mut r, VHOST_USER),
        ThreadKind::VhostReconnect => {
            allow(&mut r, VHOST_USER);
            allow(&mut r, VHOST_RECONNECT);
            r.insert(libc::SYS_socket, one_of(0, &[libc::AF_UNIX as u64]));
            // UnixStream::try_clone, and the deadline thread's start.
            allow_fd_clones_and_confined_threads(&mut r);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_ioctl_numbers_match_the_kernel_abi() {
        // linux/kvm.h on x86_64.
        assert_eq!(
            vcpu_ioctls(),
            vec![0xae80, 0x8090_ae81, 0x8138_ae83, 0x4008_ae6a, 0x4040_ae79]
        );
    }

    #[test]
    fn the_vcpu_list_covers_the_device_worker_it_starts() {
        let vcpu = rules(ThreadKind::Vcpu);
        for nr in rules(ThreadKind::DeviceWorker).keys() {
            assert!(
                vcpu.contains_key(nr),
                "{:?} is missing",
                super::super::names::name(*nr)
            );
        }
    }

    #[test]
    fn no_thread_may_open_files_or_sockets_or_start_programs() {
        for kind in ThreadKind::ALL {
            let r = rules(kind);
            for nr in [
                libc::SYS_open,
                libc::SYS_openat,
                libc::SYS_execve,
                libc::SYS_setns,
                libc::SYS_ptrace,
            ] {
                assert!(!r.contains_key(&nr), "{kind:?} allows {nr}");
            }
            // Only the reconnecting thread creates a socket, and only an AF_UNIX one.
            match (kind, r.get(&libc::SYS_socket)) {
                (_, None) => assert_ne!(kind, ThreadKind::VhostReconnect),
                (ThreadKind::VhostReconnect, Some(rules)) => assert_eq!(rules.len(), 1),
                (_, Some(_)) => panic!("{kind:?} may create sockets"),
            }
        }
    }
}
