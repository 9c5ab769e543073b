//! Pinning QEMU's vCPU thread(s) to one CPU and all its other threads to another.
//!
//! The 2024 mergeable-rx lost kick (QEMU f937309fbdbb) is a race between two QEMU threads:
//! the vCPU thread, where the guest refills the rx ring and reads `avail_event`, and the
//! main-loop thread, where virtio-net takes frames from the tap and, finding too few
//! buffers, writes `avail_event`. On a 2-core host the scheduler often runs both on the same
//! core, one after the other, and the race then needs a preemption at the wrong
//! instruction. Pinned apart they run at the same time: on the development machine one
//! device wait for buffers in about 1,400 lost the kick pinned, one in 14,000 unpinned, and
//! the odds no longer depend on where the scheduler puts the two threads (BENCHMARKS.md,
//! "QEMU's 2024 mergeable-rx lost kick").
//!
//! QEMU names its vCPU threads `CPU <n>/KVM` (`/proc/PID/task/TID/comm`; vnetbed starts it
//! with `-name ...,debug-threads=on`). The [`Pinner`] waits (bounded) for the first to
//! appear, pins, and then keeps pinning the threads QEMU creates later (its worker threads
//! inherit their creator's CPU) until it is stopped. A soak starts it when the guest has its
//! lease, so that the boot runs unpinned.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::record::VcpuPinning;

/// How long the pinner waits for QEMU's first vCPU thread (QEMU creates it while it builds
/// the machine, before the firmware runs: a soak's pinner, started at the guest's lease,
/// finds it at once).
pub const VCPU_WAIT: Duration = Duration::from_secs(30);

/// How often the pinner looks for new threads.
const POLL: Duration = Duration::from_millis(100);

/// The two CPUs the threads go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinPlan {
    /// The CPU of the vCPU thread(s).
    pub vcpu_cpu: usize,
    /// The CPU of every other QEMU thread (the main loop among them).
    pub other_cpu: usize,
}

/// What a run records and does: `asked` is `--pin-vcpu`, `is_qemu` whether the system
/// under test is QEMU, `allowed` the CPUs this process may run on. Pinning applies only to
/// QEMU and needs two CPUs; otherwise the record says why it is not applied. The run pins
/// by [`PinPlan::from_record`] of this, so that what it does is what it recorded.
pub fn decide(asked: bool, is_qemu: bool, allowed: &[usize]) -> VcpuPinning {
    let skip = |reason: String| VcpuPinning {
        asked,
        applied: false,
        reason: Some(reason),
        vcpu_cpu: None,
        other_cpu: None,
    };
    if !asked {
        return skip("--pin-vcpu off".into());
    }
    if !is_qemu {
        return skip("only QEMU's threads are pinned; the system under test is not QEMU".into());
    }
    let (Some(&other_cpu), Some(&vcpu_cpu)) = (allowed.first(), allowed.last()) else {
        return skip("the CPUs this process may use are unknown".into());
    };
    if allowed.len() < 2 {
        return skip(format!(
            "only one CPU ({other_cpu}) is available: no second CPU to pin the vCPU thread apart"
        ));
    }
    VcpuPinning {
        asked,
        applied: true,
        reason: None,
        vcpu_cpu: Some(vcpu_cpu),
        other_cpu: Some(other_cpu),
    }
}

impl PinPlan {
    /// The CPUs of a run whose record says it pins; `None` when it does not.
    pub fn from_record(pinning: &VcpuPinning) -> Option<PinPlan> {
        if !pinning.applied {
            return None;
        }
        Some(PinPlan {
            vcpu_cpu: pinning.vcpu_cpu?,
            other_cpu: pinning.other_cpu?,
        })
    }
}

/// The CPUs this process may run on, in ascending order (empty if they cannot be read).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which lives across the call; pid 0 is
    // this thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: cpu < CPU_SETSIZE, the number of bits in `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Put thread `tid` on `cpu` alone.
fn pin_thread(tid: i32, cpu: usize) -> std::io::Result<()> {
    // SAFETY: as in allowed_cpus: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the callers' CPUs come from sched_getaffinity, so cpu < CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the pointer and size describe `set`, which lives across the call; a tid that
    // is gone is an ESRCH error, nothing worse.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether a thread named `comm` is one of QEMU's vCPU threads (`CPU 0/KVM`).
pub fn is_vcpu_thread(comm: &str) -> bool {
    let comm = comm.trim_end();
    comm.starts_with("CPU ") && comm.ends_with("/KVM")
}

/// The threads of process `pid`: (tid, comm).
fn threads(pid: u32) -> Vec<(i32, String)> {
    let dir = Path::new("/proc").join(pid.to_string()).join("task");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, comm.trim_end().to_string()))
        })
        .collect()
}

/// When process `pid` started (field 22 of `/proc/PID/stat`, clock ticks since boot): with
/// the pid, it names one process, not a later one that got the same pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Keeps QEMU's threads pinned while it lives; stops when dropped.
pub struct Pinner {
    stop: Arc<AtomicBool>,
    notes: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pinner {
    /// Start pinning the threads of process `pid` (QEMU, or the `ip netns exec` about to
    /// become it) by `plan`.
    pub fn start(pid: u32, plan: PinPlan) -> std::io::Result<Pinner> {
        let stop = Arc::new(AtomicBool::new(false));
        let notes = Arc::new(Mutex::new(Vec::new()));
        let (s, n) = (stop.clone(), notes.clone());
        let thread = std::thread::Builder::new()
            .name("qemu-pin".into())
            .spawn(move || pin_loop(pid, plan, &s, &n))?;
        Ok(Pinner {
            stop,
            notes,
            thread: Some(thread),
        })
    }

    /// What happened since the last call, for the record (the first pinning, a failure).
    pub fn take_notes(&self) -> Vec<String> {
        match self.notes.lock() {
            Ok(mut n) => std::mem::take(&mut *n),
            Err(_) => Vec::new(),
        }
    }

    /// Stop pinning; what it said that was not taken yet.
    pub fn stop(mut self) -> Vec<String> {
        self.halt();
        self.take_notes()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pinner {
    fn drop(&mut self) {
        self.halt();
    }
}

fn pin_loop(pid: u32, plan: PinPlan, stop: &AtomicBool, notes: &Mutex<Vec<String>>) {
    let note = |text: String| {
        if let Ok(mut n) = notes.lock() {
            n.push(text);
        }
    };
    let started = Instant::now();
    // The process to pin; once it is gone, a process that gets its pid is left alone.
    let Some(born) = start_time(pid) else {
        return;
    };
    // The threads pinned so far, with the CPU each went to.
    let mut pinned: HashMap<i32, usize> = HashMap::new();
    let mut announced = false;
    let mut failed = false;
    while !stop.load(Ordering::SeqCst) {
        let all = threads(pid);
        if all.is_empty() || start_time(pid) != Some(born) {
            // QEMU has ended; the run records that itself.
            return;
        }
        let vcpus = all.iter().filter(|(_, c)| is_vcpu_thread(c)).count();
        if vcpus == 0 && announced {
            // The vCPU threads have gone: QEMU is shutting down.
            return;
        }
        if vcpus == 0 {
            if started.elapsed() > VCPU_WAIT {
                note(format!(
                    "pin-vcpu: QEMU (pid {pid}) had no vCPU thread (`CPU n/KVM`) after {} s; its threads were not pinned",
                    VCPU_WAIT.as_secs()
                ));
                return;
            }
        } else {
            // Threads that ended are forgotten (a long soak sees QEMU's workers come and go).
            pinned.retain(|t, _| all.iter().any(|(tid, _)| tid == t));
            for (tid, comm) in &all {
                let cpu = if is_vcpu_thread(comm) {
                    plan.vcpu_cpu
                } else {
                    plan.other_cpu
                };
                if pinned.get(tid) == Some(&cpu) {
                    continue;
                }
                match pin_thread(*tid, cpu) {
                    Ok(()) => {
                        pinned.insert(*tid, cpu);
                    }
                    // The thread ended between the listing and now.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) if !failed => {
                        failed = true;
                        note(format!(
                            "pin-vcpu: cannot pin QEMU's thread {tid} ({comm}) to CPU {cpu}: {e}"
                        ));
                    }
                    Err(_) => {}
                }
            }
            if !announced {
                announced = true;
                let others = all.len() - vcpus;
                note(format!(
                    "pin-vcpu: QEMU's {vcpus} vCPU thread(s) pinned to CPU {}, its {others} other thread(s) to CPU {} (new threads are pinned as they appear)",
                    plan.vcpu_cpu, plan.other_cpu
                ));
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_threads_are_known_by_their_names() {
        assert!(is_vcpu_thread("CPU 0/KVM"));
        assert!(is_vcpu_thread("CPU 12/KVM\n"));
        assert!(!is_vcpu_thread("qemu-system-x86"));
        assert!(!is_vcpu_thread("worker"));
        assert!(!is_vcpu_thread("CPU 0/TCG"));
    }

    #[test]
    fn pinning_needs_qemu_two_cpus_and_the_ask() {
        let rec = decide(true, true, &[0, 1]);
        assert_eq!(
            PinPlan::from_record(&rec),
            Some(PinPlan {
                vcpu_cpu: 1,
                other_cpu: 0
            })
        );
        assert!(rec.applied && rec.asked && rec.reason.is_none());
        let rec = decide(true, true, &[3]);
        assert_eq!(PinPlan::from_record(&rec), None);
        assert!(rec.asked && !rec.applied);
        assert!(rec.reason.unwrap().contains("only one CPU"));
        let rec = decide(false, true, &[0, 1]);
        assert_eq!(PinPlan::from_record(&rec), None);
        assert!(!rec.applied && !rec.asked);
        let rec = decide(true, false, &[0, 1]);
        assert!(!rec.applied && rec.reason.unwrap().contains("not QEMU"));
    }

    #[test]
    fn a_thread_of_this_process_is_pinned_and_found() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        // A thread of our own (it ends right after), pinned to the last CPU we may use.
        let cpu = *cpus.last().unwrap();
        let handle = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            pin_thread(tid, cpu).unwrap();
            (tid, allowed_cpus())
        });
        let (tid, mine) = handle.join().unwrap();
        assert_eq!(mine, vec![cpu]);
        assert!(tid > 0);
        assert!(!threads(std::process::id()).is_empty());
        let me = start_time(std::process::id());
        assert!(me.is_some());
        assert_eq!(start_time(std::process::id()), me);
    }
}
