//! The tx path: guest → backend. disable notifications → drain → enable → loop.
//!
//! When used entries are published: the buggy models follow qemu-kvm 1.0's
//! `virtio_net_flush_tx`, which pushed each packet (`virtqueue_push`: used element and
//! `used->idx`) and decided an interrupt (`virtio_notify`) per packet, then enabled
//! notifications and flushed again; so every tx packet is one chance for the lost-interrupt
//! race there. `fenced` and `virtio-queue` publish once per drained batch, after the enable,
//! as Firecracker does: fewer interrupt decisions, the same correctness.
//!
//! A backend EAGAIN keeps the frame (and its chain) pending and waits for the backend to
//! become writable (EPOLLOUT) instead of dropping it. Frames the backend rejects otherwise,
//! and frames larger than [`MAX_FRAME_LEN`], are counted as drops and their chains returned.

use std::io::ErrorKind;

use vm_memory::Bytes;

use super::core::{NetCore, PendingTx, MAX_FRAME_LEN, TX};
use super::metrics::QueueMetrics;
use crate::devices::virtio::queue::{Direction, QueueError};

impl NetCore {
    /// Send frames from the tx ring until it is empty (notifications enabled) or the backend
    /// is full (pending frame, wait for EPOLLOUT).
    pub fn process_tx(&mut self) -> Result<(), QueueError> {
        self.disable_notifications(TX)?;
        let mut completed = 0u32;
        loop {
            if let Some(p) = self.tx_pending {
                match self.backend.send(&self.tx_buf[..p.len]) {
                    Ok(_) => {
                        QueueMetrics::inc(&self.metrics.tx.frames);
                        QueueMetrics::add(&self.metrics.tx.bytes, p.len as u64);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        QueueMetrics::inc(&self.metrics.tx.tap_eagain);
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::debug!("tx backend write failed: {e}");
                        QueueMetrics::inc(&self.metrics.tx.drops);
                    }
                }
                self.tx_pending = None;
                self.tx.queue.add_used(&self.mem, p.head, 0)?;
                completed += 1;
                if self.publish_tx_per_packet() {
                    self.publish_and_notify(TX)?;
                    completed = 0;
                }
                continue;
            }
            match self.tx.queue.pop(&self.mem, Direction::DeviceReads)? {
                Some(chain) => {
                    let total = chain.total_len() as usize;
                    let hdr = self.hdr_len;
                    if total < hdr || total - hdr > MAX_FRAME_LEN {
                        QueueMetrics::inc(&self.metrics.tx.drops);
                        if total >= hdr {
                            QueueMetrics::inc(&self.metrics.tx.oversize_drops);
                        }
                        self.tx.queue.add_used(&self.mem, chain.head, 0)?;
                        completed += 1;
                        if self.publish_tx_per_packet() {
                            self.publish_and_notify(TX)?;
                            completed = 0;
                        }
                        continue;
                    }
                    self.tx_buf.resize(total, 0);
                    let mut off = 0;
                    for b in &chain.buffers {
                        let end = off + b.len as usize;
                        self.mem
                            .read_slice(&mut self.tx_buf[off..end], b.addr)
                            .map_err(|_| QueueError::Memory(b.addr.0))?;
                        off = end;
                    }
                    // Drop the virtio-net header: no offloads were offered.
                    self.tx_buf.drain(..hdr);
                    self.tx_pending = Some(PendingTx {
                        head: chain.head,
                        len: total - hdr,
                    });
                }
                None => {
                    QueueMetrics::inc(&self.metrics.tx.ring_empty);
                    if self.enable_notifications(TX)? {
                        self.disable_notifications(TX)?;
                        continue;
                    }
                    break;
                }
            }
        }
        if completed > 0 {
            self.publish_and_notify(TX)?;
        }
        Ok(())
    }

    /// qemu-kvm 1.0's order for the buggy models: publish and decide per packet.
    fn publish_tx_per_packet(&self) -> bool {
        self.options.notify_model.is_buggy()
    }

    /// Whether tx waits for the backend to become writable.
    pub fn tx_blocked(&self) -> bool {
        self.tx_pending.is_some()
    }
}
