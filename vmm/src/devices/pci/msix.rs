//! An MSI-X table and its pending-bit array (PCI Local Bus 3.0 §6.8.2): one 16-byte entry
//! per vector (message address, data, vector control with its mask bit), the function mask
//! and enable bits of the capability's message control, and delivery: an unmasked vector of
//! an enabled table raises its irqfd (bound to a KVM MSI route); a masked one sets its
//! pending bit, and the interrupt goes out when the vector is unmasked.
//!
//! Guest mistakes (accesses past the table or the PBA, sizes other than 4 and 8 bytes,
//! misaligned accesses, PBA writes) are ignored, each with an `error` event; none panics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use super::routing::{MsiMessage, MsiRoutes};
use crate::devices::virtio::signals::report_ignored;
use crate::events::EventSink;

/// "No vector" (virtio `VIRTIO_MSI_NO_VECTOR`).
pub const NO_VECTOR: u16 = 0xffff;
/// Bytes per table entry.
pub const ENTRY_SIZE: u64 = 16;
/// Message control: MSI-X enable.
pub const CONTROL_ENABLE: u16 = 1 << 15;
/// Message control: function mask.
pub const CONTROL_FUNCTION_MASK: u16 = 1 << 14;

#[derive(Debug, Clone, Copy)]
struct Entry {
    message: MsiMessage,
    masked: bool,
}

impl Default for Entry {
    fn default() -> Self {
        // Vector control resets with the mask bit set (§6.8.2.9).
        Entry {
            message: MsiMessage::default(),
            masked: true,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    pending: Vec<bool>,
    function_masked: bool,
    /// The message each vector's GSI routes now (None: no route).
    routed: Vec<Option<MsiMessage>>,
}

/// The vectors of one function: table, PBA, irqfds and routes. Shared by the vCPU threads
/// (table accesses, message control) and the device thread (delivery).
pub struct MsixVectors {
    state: Mutex<State>,
    enabled: AtomicBool,
    irqfds: Vec<EventFd>,
    first_gsi: u32,
    routes: Arc<dyn MsiRoutes>,
    events: EventSink,
    device: &'static str,
}

impl MsixVectors {
    /// Vectors over `irqfds` (vector i raises `irqfds[i]`, bound to GSI `first_gsi + i`),
    /// routed through `routes`; mistakes are reported to `events` as `device`'s.
    pub fn new(
        irqfds: Vec<EventFd>,
        first_gsi: u32,
        routes: Arc<dyn MsiRoutes>,
        events: EventSink,
        device: &'static str,
    ) -> Self {
        let n = irqfds.len();
        Self {
            state: Mutex::new(State {
                entries: vec![Entry::default(); n],
                pending: vec![false; n],
                function_masked: false,
                routed: vec![None; n],
            }),
            enabled: AtomicBool::new(false),
            irqfds,
            first_gsi,
            routes,
            events,
            device,
        }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.irqfds.len()
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.irqfds.is_empty()
    }

    /// The table's size in bytes.
    pub fn table_size(&self) -> u64 {
        self.len() as u64 * ENTRY_SIZE
    }

    /// The PBA's size in bytes (whole QWORDs).
    pub fn pba_size(&self) -> u64 {
        (self.len() as u64).div_ceil(64) * 8
    }

    /// The irqfd of vector `v` (the VMM binds it to GSI `first_gsi + v`).
    pub fn irqfd(&self, v: usize) -> Option<&EventFd> {
        self.irqfds.get(v)
    }

    /// Whether the driver enabled MSI-X.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ignored(&self, kind: &str, error: std::fmt::Arguments<'_>) {
        report_ignored(&self.events, self.device, kind, &error);
    }

    /// Raise vector `v`: its irqfd, or its pending bit while it is masked. An out-of-range
    /// vector raises nothing.
    pub fn signal(&self, v: u16) -> std::io::Result<()> {
        let v = usize::from(v);
        let mut s = self.lock();
        let Some(entry) = s.entries.get(v).copied() else {
            return Ok(());
        };
        if s.function_masked || entry.masked {
            s.pending[v] = true;
            return Ok(());
        }
        self.irqfds[v].write(1)
    }

    /// The capability's message control changed: enable and function mask.
    pub fn set_control(&self, control: u16) {
        let enable = control & CONTROL_ENABLE != 0;
        let mut s = self.lock();
        s.function_masked = control & CONTROL_FUNCTION_MASK != 0;
        self.enabled.store(enable, Ordering::SeqCst);
        for v in 0..s.entries.len() {
            self.update_vector(&mut s, v);
        }
    }

    /// Route vector `v` as its entry says, and deliver a pending interrupt it may now send.
    fn update_vector(&self, s: &mut State, v: usize) {
        let entry = s.entries[v];
        let want = (self.enabled() && !entry.masked).then_some(entry.message);
        if want.is_some() && s.routed[v] != want {
            if let Err(e) = self.routes.set_route(self.first_gsi + v as u32, want) {
                tracing::warn!("MSI-X vector {v}: {e}");
                self.ignored("msix_route_failed", format_args!("vector {v}: {e}"));
                return;
            }
            s.routed[v] = want;
        }
        if want.is_some() && !s.function_masked && s.pending[v] {
            s.pending[v] = false;
            if let Err(e) = self.irqfds[v].write(1) {
                tracing::warn!("MSI-X vector {v}: {e}");
            }
        }
    }

    fn check(&self, what: &str, size: u64, offset: u64, len: usize) -> bool {
        let ok = (len == 4 || len == 8)
            && offset % len as u64 == 0
            && offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= size);
        if !ok {
            self.ignored(
                "msix_access_out_of_range",
                format_args!(
                    "MSI-X {what} access of {len} bytes at {offset:#x} (the {what} has {size:#x} bytes; 4 or 8 aligned bytes are allowed)"
                ),
            );
        }
        ok
    }

    fn entry_dword(e: &Entry, dword: u64) -> u32 {
        match dword {
            0 => e.message.address as u32,
            1 => (e.message.address >> 32) as u32,
            2 => e.message.data,
            _ => u32::from(e.masked),
        }
    }

    /// A guest load from the table at `offset`.
    pub fn table_read(&self, offset: u64, data: &mut [u8]) {
        if !self.check("table", self.table_size(), offset, data.len()) {
            data.fill(0);
            return;
        }
        let s = self.lock();
        for (i, chunk) in data.chunks_mut(4).enumerate() {
            let at = offset + 4 * i as u64;
            let e = &s.entries[(at / ENTRY_SIZE) as usize];
            chunk.copy_from_slice(&Self::entry_dword(e, (at % ENTRY_SIZE) / 4).to_le_bytes());
        }
    }

    /// A guest store to the table at `offset`.
    pub fn table_write(&self, offset: u64, data: &[u8]) {
        if !self.check("table", self.table_size(), offset, data.len()) {
            return;
        }
        let mut s = self.lock();
        let v = (offset / ENTRY_SIZE) as usize;
        for (i, chunk) in data.chunks(4).enumerate() {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            let value = u32::from_le_bytes(b);
            let e = &mut s.entries[v];
            match ((offset % ENTRY_SIZE) / 4) + i as u64 {
                0 => e.message.address = (e.message.address & !0xffff_ffff) | u64::from(value),
                1 => {
                    e.message.address = (e.message.address & 0xffff_ffff) | (u64::from(value) << 32)
                }
                2 => e.message.data = value,
                // Only the mask bit of vector control is defined; the rest is reserved.
                _ => e.masked = value & 1 != 0,
            }
        }
        self.update_vector(&mut s, v);
    }

    /// A guest load from the PBA at `offset`.
    pub fn pba_read(&self, offset: u64, data: &mut [u8]) {
        if !self.check("PBA", self.pba_size(), offset, data.len()) {
            data.fill(0);
            return;
        }
        let s = self.lock();
        let mut bits = 0u64;
        let first = offset * 8;
        for bit in 0..(data.len() as u64 * 8) {
            if s.pending.get((first + bit) as usize) == Some(&true) {
                bits |= 1 << bit;
            }
        }
        data.copy_from_slice(&bits.to_le_bytes()[..data.len()]);
    }

    /// A guest store to the PBA: read-only, ignored with an event.
    pub fn pba_write(&self, offset: u64, data: &[u8]) {
        self.ignored(
            "msix_pba_write",
            format_args!(
                "write of {} bytes at {offset:#x} of the read-only MSI-X PBA",
                data.len()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pci::routing::RecordedRoutes as Routes;
    use crate::devices::virtio::net::test_driver::EventLog as Events;
    use crate::events::EventSink;

    fn vectors(n: usize) -> (MsixVectors, Arc<Routes>, Events) {
        let events = Events::default();
        let routes = Arc::new(Routes::default());
        let fds = (0..n)
            .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
            .collect();
        (
            MsixVectors::new(
                fds,
                24,
                routes.clone(),
                EventSink::to_writer(Box::new(events.clone())),
                "virtio-net",
            ),
            routes,
            events,
        )
    }

    fn w32(m: &MsixVectors, off: u64, v: u32) {
        m.table_write(off, &v.to_le_bytes());
    }

    fn fired(m: &MsixVectors, v: usize) -> bool {
        m.irqfd(v).unwrap().read().is_ok()
    }

    #[test]
    fn routes_unmasked_vectors_and_holds_masked_ones_pending() {
        let (m, routes, events) = vectors(3);
        m.set_control(CONTROL_ENABLE);
        w32(&m, 16, 0xfee0_0000);
        w32(&m, 16 + 8, 0x31);
        assert!(routes.0.lock().unwrap().is_empty(), "masked: no route yet");
        // Masked: the interrupt waits in the PBA.
        m.signal(1).unwrap();
        assert!(!fired(&m, 1));
        let mut pba = [0u8; 8];
        m.pba_read(0, &mut pba);
        assert_eq!(u64::from_le_bytes(pba), 0b10);
        // Unmask: routed, and the pending interrupt goes out.
        w32(&m, 16 + 12, 0);
        assert_eq!(
            routes.0.lock().unwrap().get(&25),
            Some(&MsiMessage {
                address: 0xfee0_0000,
                data: 0x31
            })
        );
        assert!(fired(&m, 1));
        m.pba_read(0, &mut pba);
        assert_eq!(u64::from_le_bytes(pba), 0);
        m.signal(1).unwrap();
        assert!(fired(&m, 1));
        // Only vector 1 fires for vector 1.
        assert!(!fired(&m, 0) && !fired(&m, 2));
        // The function mask holds it too.
        m.set_control(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        m.signal(1).unwrap();
        assert!(!fired(&m, 1));
        m.set_control(CONTROL_ENABLE);
        assert!(fired(&m, 1));
        let mut b = [0u8; 4];
        m.table_read(16 + 8, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x31);
        assert!(events.events("error").is_empty());
    }

    #[test]
    fn accesses_past_the_table_odd_sizes_and_bad_vectors_are_ignored_with_an_event() {
        let (m, routes, events) = vectors(3);
        m.set_control(CONTROL_ENABLE);
        w32(&m, 3 * 16, 0xfee0_0000); // one past the last entry
        w32(&m, u64::MAX - 3, 1);
        m.table_write(2, &[1, 2, 3, 4]); // misaligned
        m.table_write(0, &[1, 2]); // 2 bytes
        m.pba_write(0, &[0xff; 8]);
        let mut b = [0xaau8; 4];
        m.table_read(0x1000, &mut b);
        assert_eq!(b, [0; 4]);
        m.pba_read(8, &mut [0u8; 8]);
        assert_eq!(events.events("error").len(), 7);
        assert!(events
            .events("error")
            .iter()
            .all(|e| e["needs_reset"] == false && e["device"] == "virtio-net"));
        // Out-of-range vectors raise nothing.
        m.signal(3).unwrap();
        m.signal(NO_VECTOR).unwrap();
        assert!((0..3).all(|v| !fired(&m, v)));
        assert!(routes.0.lock().unwrap().is_empty());
        // 64-bit accesses work.
        m.table_write(0, &0x0000_0000_fee0_0000u64.to_le_bytes());
        let mut q = [0u8; 8];
        m.table_read(0, &mut q);
        assert_eq!(u64::from_le_bytes(q), 0xfee0_0000);
    }
}
