//! The virtio-net device (virtio 1.x §5.1): features, configuration space, and starting /
//! stopping the device thread on activation and reset.

use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use vmm_sys_util::eventfd::EventFd;

use super::backend::NetBackend;
use super::config::{MacAddr, NetOptions};
use super::core::{NetCore, RX, TX};
use super::metrics::NetMetrics;
use super::notify_model::NotifyModel;
use super::ring::Ring;
use super::worker::{StallExit, Worker};
use crate::devices::virtio::crate_queue::{CrateQueue, VIRTIO_QUEUE_VERSION};
use crate::devices::virtio::queue::{QueueConfig, QueueError, SplitQueue, MAX_QUEUE_SIZE};
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

/// The features offered on the `virtio-queue` backend: all of [`NET_FEATURES`] but
/// MRG_RXBUF, because the crate publishes `used->idx` per used element, so a frame spread
/// over several buffers would become visible to the driver one buffer at a time.
pub const NET_FEATURES_VIRTIO_QUEUE: u64 = NET_FEATURES & !(1 << VIRTIO_NET_F_MRG_RXBUF);

/// The features a device with `options` offers: no MRG_RXBUF on virtio-queue, no EVENT_IDX
/// with `no-recheck` (QEMU before EVENT_IDX existed).
pub fn offered_features(options: &NetOptions) -> u64 {
    let features = match options.notify_model {
        NotifyModel::VirtioQueue => NET_FEATURES_VIRTIO_QUEUE,
        _ => NET_FEATURES,
    };
    if options.notify_model.offers_event_idx() {
        features
    } else {
        features & !(1 << VIRTIO_RING_F_EVENT_IDX)
    }
}

/// The queue implementation named in events and records: `vnetbed`, or `virtio-queue
/// VERSION (SOURCE)` with the crate version linked into this build.
pub fn queue_backend_identity(model: NotifyModel) -> String {
    match model {
        NotifyModel::VirtioQueue => format!("virtio-queue {VIRTIO_QUEUE_VERSION}"),
        _ => "vnetbed".to_string(),
    }
}

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
    /// up to 256; other values are rounded up to a power of two and capped at 256), moving
    /// frames through `backend`.
    pub fn new(
        mac: MacAddr,
        queue_size: u16,
        backend: Box<dyn NetBackend>,
        options: NetOptions,
        events: EventSink,
    ) -> std::io::Result<Self> {
        Ok(Self {
            mac,
            queue_sizes: [queue_size.clamp(1, MAX_QUEUE_SIZE).next_power_of_two(); 2],
            features: offered_features(&options),
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
        self.features = features & offered_features(&self.options) | (1 << VIRTIO_F_VERSION_1);
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

    fn take_backend(&self) -> Option<Box<dyn NetBackend>> {
        self.backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// A guest read of a virtio-net device's configuration space at `offset`: `struct
/// virtio_net_config { u8 mac[6]; le16 status; }` (§5.1.4), link always up; bytes past it
/// read as 0 (never panics).
pub fn read_net_config(mac: MacAddr, offset: u64, data: &mut [u8]) {
    let mut c = [0u8; 8];
    c[..6].copy_from_slice(&mac.0);
    c[6..].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
    for (i, b) in data.iter_mut().enumerate() {
        *b = offset
            .checked_add(i as u64)
            .and_then(|o| c.get(o as usize))
            .copied()
            .unwrap_or(0);
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
        read_net_config(self.mac, offset, data);
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
        let event_idx = ctx.features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        let ring = |cfg: &QueueConfig, max: u16| -> Result<Ring, QueueError> {
            Ok(match self.options.notify_model {
                NotifyModel::VirtioQueue => {
                    Ring::VirtioQueue(CrateQueue::new(&ctx.mem, cfg, max, event_idx)?)
                }
                _ => Ring::Vnetbed(SplitQueue::new(&ctx.mem, cfg, max)?),
            })
        };
        let rx = ring(&rx_cfg, self.queue_sizes[RX])?;
        let tx = ring(&tx_cfg, self.queue_sizes[TX])?;
        let Some(backend) = self.take_backend() else {
            return Err(ActivateError::Thread(std::io::Error::other(
                "the backend was lost by an earlier device thread",
            )));
        };
        self.events.emit(crate::events::Event::DeviceActivated(
            crate::events::DeviceActivated {
                device: "virtio-net".into(),
                features: ctx.features,
                feature_names: names(ctx.features)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                queue_sizes: [rx_cfg.size, tx_cfg.size],
                notify_model: self.options.notify_model.to_string(),
                queue_backend: queue_backend_identity(self.options.notify_model),
                race_window_us: self.options.race_window.as_micros() as u64,
                race_queues: self.options.race_queues.to_string(),
                stall_timeout_ms: self.options.stall_timeout.as_millis() as u64,
                on_stall: self.options.on_stall.to_string(),
                mac: self.mac.to_string(),
            },
        ));
        let core = NetCore::new(
            ctx.mem,
            [rx, tx],
            backend,
            ctx.signals,
            ctx.features,
            self.options,
            self.metrics.clone(),
            self.events.clone(),
        );
        // If the thread cannot be spawned the backend is dropped with the core; the error
        // (NEEDS_RESET) says so, and a later activation reports the lost backend.
        let worker =
            Worker::spawn(core, kicks, self.exit.clone()).map_err(ActivateError::Thread)?;
        self.worker = Some(worker);
        Ok(())
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
