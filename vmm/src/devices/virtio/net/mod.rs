//! The virtio-net device (virtio 1.x §5.1) and everything around it.
//!
//! - [`device`]: features, config space, activation/reset;
//! - [`core`], [`rx`], [`tx`]: the state the device thread owns and the two data paths;
//! - [`notify_model`]: fenced / unfenced / no-recheck, the only place notification ordering
//!   is decided on vnetbed's own queue;
//! - [`ring`]: which queue implementation runs each queue: vnetbed's own, or rust-vmm's
//!   `virtio-queue` crate (notify model `virtio-queue`), which decides notifications itself;
//! - [`watchdog`]: lost-kick and lost-interrupt detection;
//! - [`worker`]: the device thread (epoll, timers);
//! - [`backend`], [`tap`]: where frames come from and go to;
//! - [`config`]: `--net` and the device options; [`metrics`]: counters;
//! - [`vhost_user`]: the same device model with its datapath in a vhost-user backend
//!   (`--vhost-user`): kicks and calls relayed and counted, a watchdog over the rings;
//! - `test_driver`: a Linux-faithful guest driver on host threads, and `test_netns`:
//!   throwaway network namespaces and an AF_PACKET peer on a tap; the test rig, only with the
//!   `test-rig` feature (tests and benchmarks), not part of the library's API.

//!
//! # Events (`--events`, one JSON object per line; common fields `event`, `ts`, `t_ms`)
//!
//! - `device_activated`: `device`, `features` (u64), `feature_names` (e.g. `["VERSION_1",
//!   "MAC", "STATUS", "EVENT_IDX", "MRG_RXBUF"]`), `queue_sizes` `[rx, tx]`, `notify_model`,
//!   `queue_backend` (`vnetbed`, or `virtio-queue VERSION (SOURCE)`: the crate linked into
//!   this build), `race_window_us`, `race_queues`, `stall_timeout_ms`, `on_stall`, `mac`.
//! - `counters` (every second, one line per queue; cumulative since the device was
//!   created): `device`, `queue` (`rx`|`tx`), `frames`, `bytes`, `kicks`, `interrupts_sent`,
//!   `interrupts_suppressed`, `ring_empty`, `notification_enables`, `race_windows_opened`,
//!   `tap_eagain`, `drops`, `oversize_drops`, `stalls_lost_kick`, `stalls_lost_interrupt`,
//!   `recovered` (lost notifications delivered by `--on-stall recover`), `stalls_recovered`
//!   (reported stalls that ended without the watchdog's help).
//! - `stall`: `device`, `queue`, `queue_index`, `kind` (`lost_kick`|`lost_interrupt`),
//!   `detected_at`, `stalled_since`, `race_at` (Unix seconds, float; `race_at` is the
//!   device's last enable / publish before the lost kick / interrupt), `stalled_ms`,
//!   `device_next_avail`, `device_next_used`, `guest_avail_idx`, `guest_used_event`,
//!   `guest_avail_flags`, `guest_visible_used_idx` (read at detection), `waiting_for_kick`,
//!   `last_kick`, `last_interrupt` (Unix seconds or null), `last_interrupt_used_idx`,
//!   `notify_model`, `queue_backend` (`vnetbed` | `virtio-queue`), `on_stall`, `counters`
//!   (the queue's counters object).
//! - `recovered`: a reported stall ended without the watchdog's help: `device`, `queue`,
//!   `queue_index`, `kind`, `cause` (`kick` | `interrupt` | `shared_line_interrupt` |
//!   `guest_progress`), `stalled_since`, `recovered_at` (Unix seconds), `stalled_ms`,
//!   `counters`.
//! - `error`: `device`, `kind` (e.g. `descriptor_loop`, `avail_idx_jump`,
//!   `register_write_at_wrong_status`), `error` (message), `queue` (or null),
//!   `needs_reset: true`. With `--vhost-user`: `backend_died` (the VM then ends with status
//!   14) and `vhost_user_vring_error`.
//!
//! `--on-stall exit` fires [`StallExit`] (a flag and an EventFd); the VMM ends with its stall
//! exit status.

pub mod backend;
pub mod config;
pub mod core;
pub mod device;
pub mod metrics;
pub mod notify_model;
pub mod ring;
pub mod rx;
pub mod tap;
pub mod tx;
pub mod vhost_user;
pub mod watchdog;
pub mod worker;

pub use config::{MacAddr, NetConfig, NetConfigError, NetOptions, NetTransport, OnStall};
pub use device::Net;
pub use notify_model::{NotifyModel, RaceQueues};
pub use worker::StallExit;

#[cfg(feature = "test-rig")]
pub mod test_driver;
#[cfg(feature = "test-rig")]
pub mod test_netns;
