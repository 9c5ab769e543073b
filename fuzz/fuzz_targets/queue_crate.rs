//! Descriptor chains over arbitrary guest memory, on the rust-vmm virtio-queue backend
//! (vmm::devices::virtio::crate_queue::CrateQueue, `--notify-model virtio-queue`): ring
//! setup, pops in both directions with vnetbed's naming of malformed chains, used elements,
//! give-backs, notification suppression and interrupt decisions, and a driver changing the
//! rings between steps.
#![no_main]

use vmm::devices::virtio::crate_queue::CrateQueue;
use vnetbed_fuzz::queue_ops::{check_chain, direction, ops_and_memory, poke, queue_config, Op};
use vnetbed_fuzz::{guest_memory, Input};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cfg = queue_config(&mut input);
    let flags = input.u8();
    let max = if flags & 1 == 0 { 256 } else { 64 };
    let event_idx = flags & 2 != 0;
    let ops = ops_and_memory(&mut input);
    let mem = guest_memory(input.rest());
    let Ok(mut q) = CrateQueue::new(&mem, &cfg, max, event_idx) else {
        return;
    };
    let mut last_head = None;
    for op in ops {
        match op {
            Op::PopRx | Op::PopTx => {
                if let Ok(Some(chain)) = q.pop(&mem, direction(op)) {
                    check_chain(&mem, &chain, q.size(), direction(op));
                    last_head = Some(chain.head);
                }
            }
            Op::AddUsed { last, head, len } => {
                let head = if last {
                    last_head.unwrap_or(head)
                } else {
                    head
                };
                let _ = q.add_used(&mem, head, len);
            }
            Op::Unpop => q.unpop(1),
            Op::Check => {
                let _ = q.enable_notification(&mem);
            }
            Op::Disable => {
                let _ = q.disable_notification(&mem);
            }
            Op::NeedsNotification => {
                let _ = q.needs_notification(&mem);
            }
            Op::Poke { addr, value } => poke(&mem, addr, value),
        }
    }
});
