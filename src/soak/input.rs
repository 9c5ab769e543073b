//! The soak's inputs, from every source, on one channel: the loop waits on that channel
//! alone, so a line is handled as soon as it arrives and nothing polls.

use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use super::children::Line;
use super::load::LoadMsg;
use crate::net::DhcpEvent;

/// One input of the soak loop.
#[derive(Debug)]
pub enum Input {
    /// A line of the VMM's output: the guest's serial console (and the VMM's own messages).
    Serial(Line),
    /// A line of vnetbed's VMM's event stream.
    VmmEvent(String),
    /// An event of the testbed's DHCP server.
    Dhcp(DhcpEvent),
    /// A line of ping's output.
    Ping(Line),
    /// A message of the load thread.
    Load(LoadMsg),
}

/// Forward everything `rx` receives to `tx`, wrapped, until either side closes. Returns the
/// forwarding thread (joined to know that everything `rx` had has been forwarded).
pub fn forward<T: Send + 'static>(
    rx: Receiver<T>,
    tx: Sender<Input>,
    wrap: fn(T) -> Input,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for item in rx {
            if tx.send(wrap(item)).is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn everything_is_forwarded_before_the_thread_ends() {
        let (tx, rx) = channel::<String>();
        let (all_tx, all_rx) = channel();
        let t = forward(rx, all_tx, Input::VmmEvent);
        for i in 0..100 {
            tx.send(format!("line {i}")).unwrap();
        }
        drop(tx);
        t.join().unwrap();
        let got: Vec<String> = all_rx
            .try_iter()
            .map(|i| match i {
                Input::VmmEvent(s) => s,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got.len(), 100);
        assert_eq!(got[99], "line 99");
    }
}
