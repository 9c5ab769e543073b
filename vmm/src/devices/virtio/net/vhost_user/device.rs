//! The virtio-net device model of a vhost-user NIC: features, configuration space and the
//! status machine stay vnetbed's (on its virtio-mmio transport); at DRIVER_OK and reset it
//! asks the relay thread to start and stop the backend's vrings.

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use virtio_bindings::virtio_net::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::config::{Mode, VhostUserConfig};
use super::frontend::{Connection, REQUEST_TIMEOUT};
use super::reconnect;
use super::relay::{self, Activation, Command, RelaySetup, Request};
use crate::devices::virtio::net::device::{read_net_config, NET_FEATURES, VIRTIO_ID_NET};
use crate::devices::virtio::net::metrics::NetMetrics;
use crate::devices::virtio::net::MacAddr;
use crate::devices::virtio::queue::{QueueConfig, MAX_QUEUE_SIZE};
use crate::devices::virtio::{ActivateContext, ActivateError, VirtioDevice};
use crate::events::EventSink;
use crate::exit_notifier::ExitNotifier;

/// A virtio-net device whose datapath is a vhost-user backend.
pub struct VhostUserNet {
    mac: MacAddr,
    queue_sizes: [u16; 2],
    features: u64,
    mode: Mode,
    metrics: Arc<NetMetrics>,
    requests: Sender<Request>,
    wake: EventFd,
    relay: Option<JoinHandle<()>>,
}

impl VhostUserNet {
    /// A device over the negotiated `conn`, with its relay thread started (and, with
    /// `reconnect=SECS`, its reconnecting thread, which sends `mem`'s table to a new backend).
    pub fn new(
        config: &VhostUserConfig,
        conn: Connection,
        mem: &GuestMemoryMmap,
        stall_timeout: Duration,
        events: EventSink,
        exit: ExitNotifier,
    ) -> std::io::Result<Self> {
        // The device model implements MAC and STATUS (configuration space) itself; the rest
        // of what the guest may use is what both vnetbed's device and the backend support.
        let model_only = (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS);
        let features = NET_FEATURES & (conn.backend_features() | model_only);
        let reconnect = match config.reconnect {
            Some(window) => Some(reconnect::spawn(
                config.socket.clone(),
                window,
                mem.clone(),
            )?),
            None => None,
        };
        let metrics = Arc::new(NetMetrics::default());
        let wake = EventFd::new(libc::EFD_NONBLOCK)?;
        let (requests, requests_rx) = channel();
        let setup = RelaySetup {
            conn,
            mode: config.mode,
            stall_timeout,
            requests: requests_rx,
            wake: wake.try_clone()?,
            metrics: metrics.clone(),
            events,
            exit,
            reconnect,
            backend_offered: features & !model_only,
        };
        let relay = std::thread::Builder::new()
            .name("vhost-user".into())
            .spawn(move || relay::run(setup))?;
        Ok(Self {
            mac: config.mac,
            queue_sizes: [config
                .queue_size
                .clamp(2, MAX_QUEUE_SIZE)
                .next_power_of_two(); 2],
            features,
            mode: config.mode,
            metrics,
            requests,
            wake,
            relay: Some(relay),
        })
    }

    /// The counters (kicks and calls passed, used entries seen, stalls).
    pub fn metrics(&self) -> Arc<NetMetrics> {
        self.metrics.clone()
    }

    /// Relay or direct.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Send `command` to the relay and wait for its answer (at most a few request
    /// timeouts: the relay's requests to the backend time out themselves).
    fn ask(&self, command: Command) -> Result<(), String> {
        let (answer, answered) = channel();
        self.requests
            .send((command, answer))
            .map_err(|_| "the vhost-user relay has ended (the backend died)".to_string())?;
        self.wake
            .write(1)
            .map_err(|e| format!("cannot wake the vhost-user relay: {e}"))?;
        answered
            .recv_timeout(REQUEST_TIMEOUT * 16)
            .map_err(|_| "the vhost-user relay did not answer (the backend died)".to_string())?
    }
}

impl VirtioDevice for VhostUserNet {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn device_features(&self) -> u64 {
        self.features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_net_config(self.mac, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // The MAC is read-only once VERSION_1 is negotiated (§5.1.4.2); writes are ignored.
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let found = ctx.queues.len();
        let count = || ActivateError::QueueCount { expected: 2, found };
        let kicks: [EventFd; 2] = ctx.kicks.try_into().map_err(|_| count())?;
        let queues: [QueueConfig; 2] = ctx.queues.try_into().map_err(|_| count())?;
        let activation = Activation {
            mem: ctx.mem,
            features: ctx.features,
            queues,
            kicks,
            signals: ctx.signals,
        };
        self.ask(Command::Activate(Box::new(activation)))
            .map_err(|e| ActivateError::Thread(std::io::Error::other(e)))
    }

    fn reset(&mut self) {
        if let Err(e) = self.ask(Command::Reset) {
            tracing::warn!("vhost-user reset: {e}");
        }
    }
}

impl Drop for VhostUserNet {
    fn drop(&mut self) {
        if self.ask(Command::Stop).is_ok() {
            if let Some(r) = self.relay.take() {
                let _ = r.join();
            }
        }
    }
}
