//! The virtio-net device (virtio 1.x §5.1): features, configuration space, and starting /
//! stopping the device thread on activation and reset.

use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use vmm_sys_util::eventfd::EventFd;

use super::backend::NetBackend;
use super::config::{MacAddr, NetOptions};
use super::core::{NetCore, QueueRuntime, RX, TX};
use super::metrics::NetMetrics;
use super::notify_model::Notifier;
use super::worker::{StallExit, Worker};
use crate::devices::virtio::queue::{QueueConfig, SplitQueue};
use crate::devices::virtio::{
    ActivateContext, ActivateError, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};
use crate::events::EventSink;

/// virtio device ID of a network card.
pub const VIRTIO_ID_NET: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_NET;

/// Device features offered: VERSION_1, MAC, STATUS, EVENT_IDX, MRG_RXBUF.
pub const NET_FEATURES: u64 = (1 << VIRTIO_F_VERSION_1)
    | (1 << VIRTIO_NET_F_MAC)
    | (1 << VIRTIO_NET_F_STATUS)
    | (1 << VIRTIO_RING_F_EVENT_IDX)
    | (1 << VIRTIO_NET_F_MRG_RXBUF);

/// A virtio-net device over a frame backend.
pub struct Net {
    mac: MacAddr,
    queue_sizes: [u16; 2],
    features: u64,
    options: NetOptions,
    events: EventSink,
    metrics: Arc<NetMetrics>,
    exit: StallExit,
    backend: Arc<Mutex<Option<Box<dyn NetBackend>>>>,
    worker: Option<Worker>,
}

impl Net {
    /// A device with MAC `mac`, rx/tx queues of at most `queue_size` entries (a power of two
    /// up to 256), moving frames through `backend`.
    pub fn new(
        mac: MacAddr,
        queue_size: u16,
        backend: Box<dyn NetBackend>,
        options: NetOptions,
        events: EventSink,
    ) -> std::io::Result<Self> {
        Ok(Self {
            mac,
            queue_sizes: [queue_size; 2],
            features: NET_FEATURES,
            options,
            events,
            metrics: Arc::new(NetMetrics::default()),
            exit: StallExit::new()?,
            backend: Arc::new(Mutex::new(Some(backend))),
            worker: None,
        })
    }

    /// Offer fewer features (tests of the non-EVENT_IDX / non-MRG_RXBUF paths).
    pub fn with_features(mut self, features: u64) -> Self {
        self.features = features & NET_FEATURES | (1 << VIRTIO_F_VERSION_1);
        self
    }

    /// The device's counters.
    pub fn metrics(&self) -> Arc<NetMetrics> {
        self.metrics.clone()
    }

    /// The `--on-stall exit` signal the VMM polls.
    pub fn stall_exit(&self) -> StallExit {
        self.exit.clone()
    }

    fn config_bytes(&self) -> [u8; 8] {
        // struct virtio_net_config { u8 mac[6]; le16 status; } (§5.1.4); link always up.
        let mut c = [0u8; 8];
        c[..6].copy_from_slice(&self.mac.0);
        c[6..].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        c
    }

    fn take_backend(&self) -> Option<Box<dyn NetBackend>> {
        self.backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

fn names(features: u64) -> Vec<&'static str> {
    let known = [
        (VIRTIO_F_VERSION_1, "VERSION_1"),
        (VIRTIO_NET_F_MAC, "MAC"),
        (VIRTIO_NET_F_STATUS, "STATUS"),
        (VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"),
        (VIRTIO_NET_F_MRG_RXBUF, "MRG_RXBUF"),
    ];
    known
        .iter()
        .filter(|(bit, _)| features & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect()
}

impl VirtioDevice for Net {
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
        let c = self.config_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| c.get(o as usize))
                .copied()
                .unwrap_or(0);
        }
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // The MAC is read-only once VERSION_1 is negotiated (§5.1.4.2); writes are ignored.
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        if self.worker.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        let found = ctx.queues.len();
        let kicks: [EventFd; 2] = ctx
            .kicks
            .try_into()
            .map_err(|_| ActivateError::QueueCount { expected: 2, found })?;
        let [rx_cfg, tx_cfg]: [QueueConfig; 2] = ctx
            .queues
            .try_into()
            .map_err(|_| ActivateError::QueueCount { expected: 2, found })?;
        let rx = SplitQueue::new(&ctx.mem, &rx_cfg, self.queue_sizes[RX])?;
        let tx = SplitQueue::new(&ctx.mem, &tx_cfg, self.queue_sizes[TX])?;
        let event_idx = ctx.features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        let Some(backend) = self.take_backend() else {
            return Err(ActivateError::Thread(std::io::Error::other(
                "the backend was lost by an earlier device thread",
            )));
        };
        self.events.emit(
            "device_activated",
            serde_json::json!({
                "device": "virtio-net",
                "features": ctx.features,
                "feature_names": names(ctx.features),
                "queue_sizes": [rx_cfg.size, tx_cfg.size],
                "notify_model": self.options.notify_model.to_string(),
                "race_window_us": self.options.race_window.as_micros() as u64,
                "stall_timeout_ms": self.options.stall_timeout.as_millis() as u64,
                "on_stall": self.options.on_stall.to_string(),
                "mac": self.mac.to_string(),
            }),
        );
        let core = NetCore {
            notifier: Notifier::new(
                self.options.notify_model,
                self.options.race_window,
                event_idx,
            ),
            rx: QueueRuntime::new(RX, rx),
            tx: QueueRuntime::new(TX, tx),
            mem: ctx.mem,
            backend,
            signals: ctx.signals,
            metrics: self.metrics.clone(),
            events: self.events.clone(),
            options: self.options,
            mrg_rxbuf: ctx.features & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0,
            event_idx,
            rx_buf: Vec::new(),
            deferred: None,
            tx_buf: Vec::new(),
            tx_pending: None,
            broken: false,
            exit_requested: false,
        };
        let backend_slot = self.backend.clone();
        match Worker::spawn(core, kicks, self.exit.clone()) {
            Ok(w) => {
                self.worker = Some(w);
                Ok(())
            }
            Err(e) => {
                // The core (and its backend) was dropped with the failed spawn.
                drop(backend_slot);
                Err(ActivateError::Thread(e))
            }
        }
    }

    fn reset(&mut self) {
        if let Some(w) = self.worker.take() {
            match w.stop() {
                Some(b) => *self.backend.lock().unwrap_or_else(|p| p.into_inner()) = Some(b),
                None => tracing::error!("virtio-net device thread panicked; the backend is lost"),
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.reset();
    }
}
