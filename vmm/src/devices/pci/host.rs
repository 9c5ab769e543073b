//! The PCI root: a host bridge at 00:00.0 and the functions on bus 0, reached through
//! ECAM (a 1 MiB MMIO window for bus 0, described by the ACPI MCFG) and through ports
//! 0xCF8/0xCFC (configuration mechanism #1). It also owns the 32-bit memory window and the
//! I/O window BARs live in, and routes each access there to the function whose BAR decodes
//! it.
//!
//! A BAR is decoded only while its function's command register enables that space and
//! the BAR lies wholly inside its window, off guest RAM, overlapping no other decoded BAR.
//! A BAR programmed anywhere else is not decoded, with one `error` event (`bar_over_ram`,
//! `bar_outside_window`, `bars_overlap`) when it gets there; nothing panics.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::config::{BarKind, ConfigError, ConfigSpace, COMMAND_IO, COMMAND_MEMORY};
use crate::devices::bus::BusDevice;
use crate::devices::virtio::signals::report_ignored;
use crate::events::EventSink;

/// Devices on bus 0 (device numbers 0..32; 0 is the host bridge).
pub const DEVICES: usize = 32;
/// The host bridge's vendor and device ID (Intel's, as Cloud Hypervisor's host bridge).
const BRIDGE_ID: (u16, u16) = (0x8086, 0x0d57);

/// A PCI function behind the root (function 0 of its device).
pub trait PciFunction: Send {
    /// Its configuration space.
    fn config(&self) -> &ConfigSpace;
    /// A guest configuration load (a function with windows into its BARs, such as
    /// virtio's VIRTIO_PCI_CAP_PCI_CFG, overrides it).
    fn config_read(&mut self, offset: u64, data: &mut [u8]) -> Result<(), ConfigError> {
        self.config().read(offset, data)
    }
    /// A guest configuration write (the function applies it through the write masks and
    /// reacts to what changed).
    fn config_write(&mut self, offset: u64, data: &[u8]) -> Result<(), ConfigError>;
    /// A guest load at `offset` in BAR `bar`.
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    /// A guest store at `offset` in BAR `bar`.
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// Where BAR `bar` is decoded now (None: not decoded), after any change.
    fn bar_mapped(&mut self, _bar: usize, _base: Option<u64>) {}
}

/// A shared function.
pub type SharedFunction = Arc<Mutex<dyn PciFunction>>;

fn lock(f: &SharedFunction) -> std::sync::MutexGuard<'_, dyn PciFunction + 'static> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

/// An address window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
}

impl Window {
    fn contains(&self, base: u64, size: u64) -> bool {
        base >= self.start && base.checked_add(size).is_some_and(|e| e <= self.end)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Mapping {
    io: bool,
    base: u64,
    size: u64,
    device: usize,
    bar: usize,
}

/// Errors placing functions.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// All 31 device numbers are taken.
    #[error("PCI bus 0 is full (31 devices)")]
    BusFull,
    /// The window has no room for a BAR.
    #[error("no room for a {size:#x}-byte BAR in the PCI window")]
    WindowFull {
        /// BAR size.
        size: u64,
    },
}

/// Bus 0.
pub struct PciRoot {
    bridge: ConfigSpace,
    functions: Vec<Option<SharedFunction>>,
    mmio: Window,
    io: Window,
    ram: Vec<(u64, u64)>,
    next_mmio: u64,
    next_io: u64,
    mappings: Vec<Mapping>,
    reported: BTreeSet<(usize, usize, u64, &'static str)>,
    events: EventSink,
}

impl PciRoot {
    /// A root whose BARs live in `mmio` and `io`; guest RAM is `ram` (start, size).
    pub fn new(mmio: Window, io: Window, ram: Vec<(u64, u64)>, events: EventSink) -> Self {
        let mut functions = vec![None; DEVICES];
        functions.truncate(DEVICES);
        Self {
            // Class 06/00/00: host bridge.
            bridge: ConfigSpace::new(BRIDGE_ID.0, BRIDGE_ID.1, [6, 0, 0], 0),
            functions,
            mmio,
            io,
            ram,
            next_mmio: mmio.start,
            next_io: io.start,
            mappings: Vec::new(),
            reported: BTreeSet::new(),
            events,
        }
    }

    /// The next free device number (1..32).
    pub fn free_device(&self) -> Result<usize, PciError> {
        (1..DEVICES)
            .find(|&d| self.functions[d].is_none())
            .ok_or(PciError::BusFull)
    }

    /// Take a naturally aligned block of `size` bytes of the memory (or I/O) window, as
    /// firmware assigns BARs.
    pub fn allocate(&mut self, io: bool, size: u64) -> Result<u64, PciError> {
        let (next, window) = if io {
            (&mut self.next_io, self.io)
        } else {
            (&mut self.next_mmio, self.mmio)
        };
        let base = next.next_multiple_of(size);
        if !window.contains(base, size) {
            return Err(PciError::WindowFull { size });
        }
        *next = base + size;
        Ok(base)
    }

    /// Put `function` at device number `device` (from [`PciRoot::free_device`]).
    pub fn insert(&mut self, device: usize, function: SharedFunction) {
        if let Some(slot) = self.functions.get_mut(device) {
            *slot = Some(function);
        }
        self.remap();
    }

    fn function(&self, device: usize) -> Option<SharedFunction> {
        self.functions.get(device).cloned().flatten()
    }

    /// A configuration load of device `device` (function `function`) at `offset`.
    pub fn config_read(&self, device: usize, function: usize, offset: u64, data: &mut [u8]) {
        if function != 0 {
            data.fill(0xff);
            return;
        }
        let result = if device == 0 {
            self.bridge.read(offset, data)
        } else if let Some(f) = self.function(device) {
            lock(&f).config_read(offset, data)
        } else {
            data.fill(0xff);
            Ok(())
        };
        if let Err(e) = result {
            report_ignored(&self.events, "pci", "config_access_out_of_range", &e);
        }
    }

    /// A configuration store to device `device` (function `function`) at `offset`.
    pub fn config_write(&mut self, device: usize, function: usize, offset: u64, data: &[u8]) {
        if function != 0 {
            return;
        }
        let result = if device == 0 {
            self.bridge.write(offset, data)
        } else if let Some(f) = self.function(device) {
            let r = lock(&f).config_write(offset, data);
            self.remap();
            r
        } else {
            Ok(())
        };
        if let Err(e) = result {
            report_ignored(&self.events, "pci", "config_access_out_of_range", &e);
        }
    }

    /// Recompute which BARs are decoded, tell the functions, report BARs in bad places.
    fn remap(&mut self) {
        let mut candidates = Vec::new();
        for (device, f) in self.functions.iter().enumerate() {
            let Some(f) = f else { continue };
            let f = lock(f);
            let command = f.config().command();
            for bar in 0..6 {
                let Some((def, base)) = f.config().bar(bar) else {
                    continue;
                };
                let io = def.kind == BarKind::Io;
                let enabled = command & if io { COMMAND_IO } else { COMMAND_MEMORY } != 0;
                if enabled {
                    candidates.push(Mapping {
                        io,
                        base,
                        size: def.size,
                        device,
                        bar,
                    });
                }
            }
        }
        let mut problems = Vec::new();
        let mut good = Vec::new();
        for m in &candidates {
            let window = if m.io { self.io } else { self.mmio };
            let problem = if !m.io
                && self
                    .ram
                    .iter()
                    .any(|&(s, l)| m.base < s + l && s < m.base.saturating_add(m.size))
            {
                Some("bar_over_ram")
            } else if !window.contains(m.base, m.size) {
                Some("bar_outside_window")
            } else if candidates.iter().any(|o| {
                o != m && o.io == m.io && o.base < m.base + m.size && m.base < o.base + o.size
            }) {
                Some("bars_overlap")
            } else {
                None
            };
            match problem {
                Some(kind) => problems.push((m.device, m.bar, m.base, kind)),
                None => good.push(*m),
            }
        }
        let now: BTreeSet<_> = problems.iter().copied().collect();
        for p in now.difference(&self.reported) {
            let (device, bar, base, kind) = *p;
            report_ignored(
                &self.events,
                "pci",
                kind,
                &format_args!(
                    "00:{device:02x}.0 BAR{bar} at {base:#x} is not decoded ({kind}: the guest programmed it there)"
                ),
            );
        }
        self.reported = now;
        if good != self.mappings {
            for (device, f) in self.functions.iter().enumerate() {
                let Some(f) = f else { continue };
                let mut f = lock(f);
                for bar in 0..6 {
                    let base = good
                        .iter()
                        .find(|m| m.device == device && m.bar == bar)
                        .map(|m| m.base);
                    f.bar_mapped(bar, base);
                }
            }
            self.mappings = good;
        }
    }

    fn resolve(&self, io: bool, addr: u64) -> Option<(SharedFunction, usize, u64)> {
        let m = self
            .mappings
            .iter()
            .find(|m| m.io == io && addr >= m.base && addr - m.base < m.size)?;
        Some((self.function(m.device)?, m.bar, addr - m.base))
    }
}

/// A shared root.
pub type SharedRoot = Arc<Mutex<PciRoot>>;

fn lock_root(r: &SharedRoot) -> std::sync::MutexGuard<'_, PciRoot> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// ECAM for bus 0: offset = device << 15 | function << 12 | register.
pub struct Ecam(pub SharedRoot);

fn ecam_split(offset: u64) -> Option<(usize, usize, u64)> {
    // Bus 0 only: the window is 1 MiB, so anything beyond is not ours.
    (offset >> 20 == 0).then_some((
        ((offset >> 15) & 0x1f) as usize,
        ((offset >> 12) & 7) as usize,
        offset & 0xfff,
    ))
}

impl BusDevice for Ecam {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match ecam_split(offset) {
            Some((d, f, reg)) => lock_root(&self.0).config_read(d, f, reg, data),
            None => data.fill(0xff),
        }
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some((d, f, reg)) = ecam_split(offset) {
            lock_root(&self.0).config_write(d, f, reg, data);
        }
    }
}

/// Configuration mechanism #1: CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF (the
/// bus device spans the 8 ports).
pub struct ConfigPorts {
    root: SharedRoot,
    address: u32,
}

impl ConfigPorts {
    /// Ports for `root`.
    pub fn new(root: SharedRoot) -> Self {
        Self { root, address: 0 }
    }

    /// The selected (device, function, register) for a data access at `port_offset` (4..8),
    /// if the address register is enabled and selects bus 0.
    fn selected(&self, port_offset: u64) -> Option<(usize, usize, u64)> {
        let a = self.address;
        if a & 0x8000_0000 == 0 || (a >> 16) & 0xff != 0 {
            return None;
        }
        Some((
            ((a >> 11) & 0x1f) as usize,
            ((a >> 8) & 7) as usize,
            u64::from(a & 0xfc) + (port_offset - 4),
        ))
    }
}

impl BusDevice for ConfigPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            0 if data.len() == 4 => data.copy_from_slice(&self.address.to_le_bytes()),
            4..=7 => match self.selected(offset) {
                Some((d, f, reg)) => lock_root(&self.root).config_read(d, f, reg, data),
                None => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            0 => {
                if let Ok(b) = <[u8; 4]>::try_from(data) {
                    self.address = u32::from_le_bytes(b);
                }
            }
            4..=7 => {
                if let Some((d, f, reg)) = self.selected(offset) {
                    lock_root(&self.root).config_write(d, f, reg, data);
                }
            }
            _ => {}
        }
    }
}

/// The memory (or I/O) window BARs live in; accesses go to the decoding function.
pub struct BarWindow {
    root: SharedRoot,
    io: bool,
    start: u64,
}

impl BarWindow {
    /// The window of `root` starting at guest address (or port) `start`.
    pub fn new(root: SharedRoot, io: bool, start: u64) -> Self {
        Self { root, io, start }
    }
}

impl BusDevice for BarWindow {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let found = lock_root(&self.root).resolve(self.io, self.start + offset);
        match found {
            Some((f, bar, off)) => lock(&f).bar_read(bar, off, data),
            None => data.fill(0xff),
        }
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        let found = lock_root(&self.root).resolve(self.io, self.start + offset);
        if let Some((f, bar, off)) = found {
            lock(&f).bar_write(bar, off, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{BarDef, COMMAND_MEMORY};
    use super::*;
    use crate::devices::virtio::net::test_driver::EventLog as Events;
    use crate::events::EventSink;

    /// A function with one 4 KiB memory BAR that remembers the last store.
    struct Plain {
        config: ConfigSpace,
        last: Option<(usize, u64, Vec<u8>)>,
        mapped: Option<u64>,
    }
    impl PciFunction for Plain {
        fn config(&self) -> &ConfigSpace {
            &self.config
        }
        fn config_write(&mut self, offset: u64, data: &[u8]) -> Result<(), ConfigError> {
            self.config.write(offset, data)
        }
        fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
            self.last = Some((bar, offset, data.to_vec()));
        }
        fn bar_mapped(&mut self, bar: usize, base: Option<u64>) {
            if bar == 0 {
                self.mapped = base;
            }
        }
    }

    const MMIO: Window = Window {
        start: 0xe010_0000,
        end: 0xf000_0000,
    };
    const IO: Window = Window {
        start: 0x6000,
        end: 0x7000,
    };

    fn root_with(n: usize) -> (SharedRoot, Vec<Arc<Mutex<Plain>>>, Events) {
        let events = Events::default();
        let mut root = PciRoot::new(
            MMIO,
            IO,
            vec![(0, 0x1000_0000)],
            EventSink::to_writer(Box::new(events.clone())),
        );
        let mut fs = Vec::new();
        for _ in 0..n {
            let mut config = ConfigSpace::new(0x1af4, 0x1041, [2, 0, 0], 1);
            let def = BarDef {
                kind: BarKind::Memory32,
                size: 0x1000,
            };
            config.set_bar(0, def, root.allocate(false, 0x1000).unwrap());
            config.set16(0x04, COMMAND_MEMORY);
            let f = Arc::new(Mutex::new(Plain {
                config,
                last: None,
                mapped: None,
            }));
            let d = root.free_device().unwrap();
            root.insert(d, f.clone());
            fs.push(f);
        }
        (Arc::new(Mutex::new(root)), fs, events)
    }

    fn ecam_r32(e: &mut Ecam, dev: u64, reg: u64) -> u32 {
        let mut b = [0u8; 4];
        e.read(dev << 15 | reg, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn ecam_and_ports_reach_the_same_functions() {
        let (root, _fs, _) = root_with(1);
        let mut ecam = Ecam(root.clone());
        let mut ports = ConfigPorts::new(root);
        assert_eq!(ecam_r32(&mut ecam, 0, 0), 0x0d57_8086, "host bridge");
        assert_eq!(ecam_r32(&mut ecam, 1, 0), 0x1041_1af4);
        assert_eq!(ecam_r32(&mut ecam, 2, 0), 0xffff_ffff, "empty slot");
        ports.write(0, &(0x8000_0800u32).to_le_bytes());
        let mut b = [0u8; 2];
        ports.read(6, &mut b);
        assert_eq!(u16::from_le_bytes(b), 0x1041);
        // Disabled address register, other buses, other functions: all ones.
        for a in [0x0000_0800u32, 0x8001_0800, 0x8000_0900] {
            ports.write(0, &a.to_le_bytes());
            let mut b = [0u8; 4];
            ports.read(4, &mut b);
            assert_eq!(b, [0xff; 4], "{a:#x}");
        }
    }

    #[test]
    fn bars_decode_where_programmed_and_bad_places_are_reported_not_decoded() {
        let (root, fs, events) = root_with(2);
        let mut ecam = Ecam(root.clone());
        let mut window = BarWindow::new(root.clone(), false, MMIO.start);
        window.write(0x1004, &[7]);
        assert_eq!(fs[1].lock().unwrap().last, Some((0, 4, vec![7])));
        assert_eq!(fs[0].lock().unwrap().mapped, Some(MMIO.start));
        let bar0 = |dev: u64| dev << 15 | 0x10;
        // Over RAM.
        ecam.write(bar0(1), &0x0010_0000u32.to_le_bytes());
        assert_eq!(fs[0].lock().unwrap().mapped, None);
        // Over the other function's BAR.
        ecam.write(bar0(1), &((MMIO.start + 0x1000) as u32).to_le_bytes());
        // Outside the window.
        ecam.write(bar0(1), &0xf800_0000u32.to_le_bytes());
        let kinds: Vec<_> = events
            .events("error")
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "bar_over_ram",
                "bars_overlap",
                "bars_overlap",
                "bar_outside_window"
            ]
        );
        let mut b = [0u8; 1];
        window.read(0x1000, &mut b);
        assert_eq!(
            b,
            [0],
            "function 2 lost its BAR while they overlapped, has it back now"
        );
        // Moved to a free spot: decoded there.
        ecam.write(bar0(1), &((MMIO.start + 0x8000) as u32).to_le_bytes());
        assert_eq!(fs[0].lock().unwrap().mapped, Some(MMIO.start + 0x8000));
        window.write(0x8000, &[1]);
        assert_eq!(fs[0].lock().unwrap().last, Some((0, 0, vec![1])));
        // Out-of-range config accesses: ignored, reported.
        ecam.write(1 << 15 | 0xffe, &[0; 4]);
        ecam.write(1 << 20, &[0; 4]);
        assert!(events
            .events("error")
            .iter()
            .any(|e| e["kind"] == "config_access_out_of_range"));
    }
}
