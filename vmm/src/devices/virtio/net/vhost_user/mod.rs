//! A virtio-net device whose datapath is a vhost-user backend (DPDK's vhost library in
//! `dpdk-testpmd`, OVS-DPDK, ...): vnetbed keeps the device model (virtio-mmio registers,
//! features, configuration space, status) and the guest memory, which is memfd-backed and
//! shared with the backend; the backend moves the frames.
//!
//! - [`config`]: `--vhost-user SOCKET[,mac=..][,queue-size=N][,mode=relay|direct]`;
//! - [`frontend`]: the vhost-user conversation, on rust-vmm's `vhost` crate;
//! - [`device`]: the [`VirtioDevice`](crate::devices::virtio::VirtioDevice) half;
//! - `relay`: the thread that passes kicks and calls on, counted, and notices the backend
//!   dying; `watch`: lost-kick and lost-interrupt judgement for a backend vnetbed cannot see
//!   inside, from the rings and the kick/call history.
//!
//! In relay mode (the default) every kick and every call passes through vnetbed. In direct
//! mode KVM's ioeventfd is the backend's kick eventfd: kicks are neither counted nor
//! judged (a lost kick cannot be told from an idle queue). Calls pass through vnetbed in both
//! modes: on virtio-mmio the interrupt must set InterruptStatus first.
//!
//! A backend that dies (closes its socket) ends the VM with exit status 14
//! ([`ExitReason::BackendDied`](crate::exit::ExitReason::BackendDied)) after an `error` event
//! of kind `backend_died`, unless `reconnect=SECS` is given: then `reconnect`'s thread
//! connects again for up to SECS and the relay renegotiates and restarts the vrings (a
//! `backend` event `disconnected`, then `reconnected` with the downtime).

pub mod config;
pub mod device;
pub mod frontend;
mod reconnect;
mod relay;
mod watch;

pub use config::{Mode, VhostUserConfig, VhostUserConfigError};
pub use device::VhostUserNet;
pub use frontend::{Connection, VhostUserError};
