//! What ends the VM: one [`ExitNotifier`], shared by everything that can end it (vCPUs,
//! legacy devices, the stall watchdog, signals) and waited on by [`crate::vm::Vm::run`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use vmm_sys_util::eventfd::EventFd;

use crate::exit::{ExitReason, VmExit};

struct ExitInner {
    exit: Mutex<Option<VmExit>>,
    stop: AtomicBool,
    evt: EventFd,
}

/// Shared by everything that can end the VM (vCPUs, legacy devices, the stall watchdog,
/// signals). The first reason recorded wins.
#[derive(Clone)]
pub struct ExitNotifier {
    inner: Arc<ExitInner>,
}

impl ExitNotifier {
    /// A notifier no one has fired yet.
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            inner: Arc::new(ExitInner {
                exit: Mutex::new(None),
                stop: AtomicBool::new(false),
                evt: EventFd::new(libc::EFD_CLOEXEC)?,
            }),
        })
    }

    /// Ask the VM to end for `reason` (ignored if it is already ending for another reason).
    pub fn request(&self, reason: ExitReason) {
        {
            let mut slot = self.inner.exit.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(VmExit {
                    reason,
                    at: Instant::now(),
                });
            }
        }
        self.inner.stop.store(true, Ordering::Release);
        if let Err(e) = self.inner.evt.write(1) {
            tracing::error!("cannot signal VM exit: {e}");
        }
    }

    /// Set once the VM is ending; vCPU loops and device threads poll it.
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.inner.stop
    }

    /// The exit recorded so far.
    pub fn recorded(&self) -> Option<VmExit> {
        self.inner
            .exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The eventfd written on every request; the VM's main thread waits on it.
    pub(crate) fn event(&self) -> &EventFd {
        &self.inner.evt
    }
}
