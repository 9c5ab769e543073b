//! The virtio-mmio register file (vmm::devices::virtio::mmio::MmioTransport) with the real
//! virtio-net device behind it, as a sequence of guest reads and writes of any size and
//! offset, plus guest-memory writes between them: feature negotiation, queue setup,
//! activation (which starts the device thread over the fuzzed rings) on every notify model
//! and mutant, notifications,
//! interrupt acknowledgement, configuration space, resets.
#![no_main]

use vm_memory::GuestMemoryMmap;
use vmm::devices::bus::BusDevice;
use vmm::devices::virtio::mmio::MmioTransport;
use vmm::devices::virtio::net::{MacAddr, Net, NetOptions, NotifyModel};
use vmm::devices::virtio::Signals;
use vmm::events::EventSink;
use vmm_sys_util::eventfd::EventFd;
use vnetbed_fuzz::queue_ops::poke;
use vnetbed_fuzz::{closed_backend, reused_guest_memory, Input};

/// Registers end at 0x100; the net config space follows. Offsets run a little past it.
const WINDOW: u64 = 0x140;

fn transport(model: NotifyModel, mem: &GuestMemoryMmap<()>) -> Option<MmioTransport> {
    let backend = closed_backend()?;
    let options = NetOptions {
        notify_model: model,
        ..NetOptions::default()
    };
    let events = EventSink::none();
    let net = Net::new(
        MacAddr::DEFAULT,
        16,
        Box::new(backend),
        options,
        events.clone(),
    )
    .ok()?;
    let signals = Signals::new(EventFd::new(libc::EFD_NONBLOCK).ok()?, events, "virtio-net");
    MmioTransport::new(Box::new(net), mem.clone(), signals).ok()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let model = match input.u8() % 6 {
        0 => NotifyModel::Fenced,
        1 => NotifyModel::Unfenced,
        2 => NotifyModel::NoRecheck,
        3 => NotifyModel::VirtioQueue,
        4 => NotifyModel::MissingEnableFence,
        _ => NotifyModel::MissingNotifyFence,
    };
    // The rings live in the first 4 KiB; it starts with what the input's tail holds.
    let n = usize::from(input.u8());
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = input.u8();
        let offset = if kind & 0x80 != 0 {
            u64::from(input.u16()) % WINDOW
        } else {
            (u64::from(input.u8()) * 4) % WINDOW
        };
        ops.push((kind, offset, input.u64()));
    }
    // The transport (and its device thread) of the previous input is gone: reuse the mapping.
    let mem = reused_guest_memory(input.rest());
    let Some(mut t) = transport(model, &mem) else {
        return;
    };
    for (kind, offset, value) in ops {
        let len = 1usize << ((kind >> 1) & 3);
        match kind & 0x41 {
            0x00 => {
                let mut buf = [0u8; 8];
                t.read(offset, &mut buf[..len]);
            }
            0x01 => t.write(offset, &value.to_le_bytes()[..len]),
            _ => poke(&mem, value & 0xfff, (value >> 16) as u16),
        }
    }
    let _ = (t.status(), t.driver_features(), t.is_active());
    // Dropping the transport resets an active device and joins its thread.
});
