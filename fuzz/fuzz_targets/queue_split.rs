//! Descriptor chains over arbitrary guest memory, on vnetbed's own split queue
//! (vmm::devices::virtio::queue::SplitQueue): ring setup, pops in both directions, used
//! elements, give-backs, and a driver changing the rings between steps.
#![no_main]

use vmm::devices::virtio::queue::SplitQueue;
use vnetbed_fuzz::queue_ops::{check_chain, direction, ops_and_memory, poke, queue_config, Op};
use vnetbed_fuzz::{guest_memory, Input};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cfg = queue_config(&mut input);
    let max = if input.u8() & 1 == 0 { 256 } else { 64 };
    let ops = ops_and_memory(&mut input);
    let mem = guest_memory(input.rest());
    let Ok(mut q) = SplitQueue::new(&mem, &cfg, max) else {
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
                if let Ok(n) = q.available(&mem) {
                    assert!(n <= q.size());
                }
            }
            Op::Disable | Op::NeedsNotification => {
                let at = if matches!(op, Op::Disable) {
                    q.used_flags_addr()
                } else {
                    q.avail_event_addr()
                };
                let _ = q.load_u16(&mem, at, std::sync::atomic::Ordering::Acquire);
            }
            Op::Poke { addr, value } => poke(&mem, addr, value),
        }
    }
});
