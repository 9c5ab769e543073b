//! The rx path: backend → guest. disable notifications → drain → enable → loop (§2.7.10).
//!
//! A frame read from the backend while the ring has no buffer is kept (deferred) and
//! delivered first once the guest adds buffers; it is never dropped for lack of buffers.
//! With MRG_RXBUF a frame may span several chains and `num_buffers` says how many; without
//! it one chain must hold header + frame. A frame that can never fit (larger than the whole
//! ring, or than one chain without MRG_RXBUF) is counted and dropped, never truncated.

use std::io::ErrorKind;

use vm_memory::{Bytes, GuestAddress};

use super::core::{NetCore, MAX_FRAME_LEN, NET_HDR_LEN, NUM_BUFFERS_OFFSET, RX};
use super::metrics::QueueMetrics;
use crate::devices::virtio::queue::{Chain, Direction, QueueError};

/// What became of one frame.
enum Delivery {
    Delivered,
    /// Not enough buffers for the frame; the count of available ones it would have used
    /// (more than 0 only with MRG_RXBUF, when a frame needs more buffers than are posted).
    NoBuffers {
        seen: u16,
    },
    Oversize,
}

impl NetCore {
    /// Move frames from the backend into the rx ring until the backend is empty or the
    /// ring is dry with notifications enabled.
    pub fn process_rx(&mut self) -> Result<(), QueueError> {
        self.disable_notifications(RX)?;
        loop {
            let len = match self.deferred {
                Some(len) => len,
                None => match self.read_frame() {
                    Some(len) => len,
                    None => break,
                },
            };
            match self.deliver(len)? {
                Delivery::Delivered => {
                    self.deferred = None;
                    let c = &self.metrics.rx;
                    QueueMetrics::inc(&c.frames);
                    QueueMetrics::add(&c.bytes, len as u64);
                    // Publish and decide on an interrupt per frame, as QEMU's
                    // virtio_net_receive does (virtqueue_flush + virtio_notify per packet):
                    // the guest can consume and refill while the device is still draining
                    // the backend, which is the concurrency the lost-kick race needs.
                    self.publish_and_notify(RX)?;
                }
                Delivery::Oversize => {
                    self.deferred = None;
                    QueueMetrics::inc(&self.metrics.rx.drops);
                    QueueMetrics::inc(&self.metrics.rx.oversize_drops);
                }
                Delivery::NoBuffers { seen } => {
                    self.deferred = Some(len);
                    QueueMetrics::inc(&self.metrics.rx.ring_empty);
                    // Wait for buffers beyond the `seen` ones: re-checking for "any buffer"
                    // would find those again and spin without end while the guest posts
                    // nothing new.
                    if self.enable_notifications_beyond(RX, seen)? {
                        // Buffers arrived between the emptiness check and the enable.
                        self.disable_notifications(RX)?;
                        continue;
                    }
                    break;
                }
            }
        }
        Ok(())
    }

    /// Whether rx waits for guest buffers (so the backend should not be polled for input).
    pub fn rx_blocked(&self) -> bool {
        self.deferred.is_some() && self.rx.waiting_kick
    }

    /// Read one frame into `rx_buf` after the header room; `None` when the backend is empty.
    fn read_frame(&mut self) -> Option<usize> {
        // One spare byte beyond the largest frame tells a too-long read from a full one.
        self.rx_buf.resize(NET_HDR_LEN + MAX_FRAME_LEN + 1, 0);
        match self.backend.recv(&mut self.rx_buf[NET_HDR_LEN..]) {
            Ok(n) if n > MAX_FRAME_LEN => {
                QueueMetrics::inc(&self.metrics.rx.drops);
                QueueMetrics::inc(&self.metrics.rx.oversize_drops);
                self.read_frame()
            }
            // No frame: a backend whose peer hung up (a socket pair's other end closed)
            // reads as 0 bytes at once and forever; delivering that as a frame (or dropping
            // it and reading on) never ends the batch. The worker stops polling such a
            // backend when epoll reports the hang-up.
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                QueueMetrics::inc(&self.metrics.rx.tap_eagain);
                None
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => self.read_frame(),
            Err(e) => {
                tracing::warn!("rx backend read failed: {e}");
                QueueMetrics::inc(&self.metrics.rx.drops);
                None
            }
        }
    }

    /// Put header + frame (`len` bytes) into as many chains as needed.
    fn deliver(&mut self, len: usize) -> Result<Delivery, QueueError> {
        // The frame sits at NET_HDR_LEN in rx_buf; a shorter (legacy) header ends there too.
        let start = NET_HDR_LEN - self.hdr_len;
        let total = (self.hdr_len + len) as u64;
        let size = self.rx.queue.size();
        let mut chains: Vec<(Chain, u64)> = Vec::new();
        let mut remaining = total;
        while remaining > 0 {
            let limit = if self.mrg_rxbuf { usize::from(size) } else { 1 };
            if chains.len() >= limit {
                self.rx.queue.unpop(chains.len() as u16);
                return Ok(Delivery::Oversize);
            }
            match self.rx.queue.pop(&self.mem, Direction::DeviceWrites)? {
                Some(chain) => {
                    let take = chain.total_len().min(remaining);
                    remaining -= take;
                    chains.push((chain, take));
                }
                None => {
                    let seen = chains.len() as u16;
                    self.rx.queue.unpop(seen);
                    return Ok(Delivery::NoBuffers { seen });
                }
            }
        }
        // virtio_net_hdr_v1: no offloads; num_buffers = chains used (1 without MRG_RXBUF).
        // The legacy 10-byte header (no VERSION_1, no MRG_RXBUF) has no num_buffers.
        self.rx_buf[..NET_HDR_LEN].fill(0);
        if self.hdr_len == NET_HDR_LEN {
            let num_buffers = chains.len() as u16;
            self.rx_buf[NUM_BUFFERS_OFFSET..NET_HDR_LEN]
                .copy_from_slice(&num_buffers.to_le_bytes());
        }
        let mut offset = start;
        for (chain, take) in &chains {
            let mut left = *take as usize;
            for b in &chain.buffers {
                if left == 0 {
                    break;
                }
                let n = left.min(b.len as usize);
                self.write_guest(b.addr, offset, n)?;
                offset += n;
                left -= n;
            }
        }
        for (chain, take) in &chains {
            self.rx
                .queue
                .add_used(&self.mem, chain.head, *take as u32)?;
        }
        Ok(Delivery::Delivered)
    }

    fn write_guest(&self, addr: GuestAddress, offset: usize, n: usize) -> Result<(), QueueError> {
        self.mem
            .write_slice(&self.rx_buf[offset..offset + n], addr)
            .map_err(|_| QueueError::Memory(addr.0))
    }
}
