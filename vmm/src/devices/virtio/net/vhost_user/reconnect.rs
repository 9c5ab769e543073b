//! The reconnecting thread of a vhost-user virtio-net with `reconnect=SECS`: when the relay
//! finds the backend's socket closed, it asks this thread (started at attach, before the
//! guest runs) to connect to the backend's socket again until a deadline, and to negotiate
//! anew (ownership, features, protocol features, the memory table). The new [`Connection`]
//! goes back to the relay, which checks the features and restarts the vrings.
//!
//! It is a thread of its own because it is the only one that creates a socket: its seccomp
//! filter ([`ThreadKind::VhostReconnect`](crate::seccomp::ThreadKind::VhostReconnect))
//! allows `socket(AF_UNIX, ...)` and `connect`, which the relay's does not.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::frontend::{Connection, VhostUserError};

/// Pause between two attempts to connect.
const RETRY: Duration = Duration::from_millis(50);

/// What an attempt to reconnect came to.
pub(super) enum Outcome {
    /// A backend is there and negotiated.
    Connected(Box<Connection>),
    /// None came back before the deadline; the last error.
    GaveUp(String),
}

/// The relay's end of the reconnecting thread.
pub(super) struct Reconnector {
    /// Ask for a connection before the deadline.
    pub trigger: Sender<Instant>,
    /// The answers.
    pub outcomes: Receiver<Outcome>,
    /// Written with each answer (the relay polls it).
    pub ready: EventFd,
    /// The socket (for the events).
    pub socket: PathBuf,
    /// How long the backend may be away.
    pub window: Duration,
}

/// Start the thread for the backend at `socket`, whose memory table is `mem`.
pub(super) fn spawn(
    socket: PathBuf,
    window: Duration,
    mem: GuestMemoryMmap,
) -> std::io::Result<Reconnector> {
    let (trigger, triggers) = channel::<Instant>();
    let (answer, outcomes) = channel();
    let ready = EventFd::new(libc::EFD_NONBLOCK)?;
    let wake = ready.try_clone()?;
    let path = socket.clone();
    std::thread::Builder::new()
        .name("vhost-reconnect".into())
        .spawn(move || {
            crate::seccomp::apply_or_exit(crate::seccomp::ThreadKind::VhostReconnect);
            // Ends when the relay drops its end.
            while let Ok(deadline) = triggers.recv() {
                let outcome = reconnect(&path, &mem, deadline);
                if answer.send(outcome).is_err() {
                    return;
                }
                let _ = wake.write(1);
            }
        })?;
    Ok(Reconnector {
        trigger,
        outcomes,
        ready,
        socket,
        window,
    })
}

/// Connect and negotiate until it works or `deadline` passes. A backend that accepts and
/// then fails the negotiation (it is still starting, or it drops the socket) is tried again.
fn reconnect(path: &std::path::Path, mem: &GuestMemoryMmap, deadline: Instant) -> Outcome {
    let mut last: String;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => match Connection::negotiate(stream, mem) {
                Ok(conn) => return Outcome::Connected(Box::new(conn)),
                Err(e) => last = e.to_string(),
            },
            Err(source) => {
                last = VhostUserError::Connect {
                    path: path.to_path_buf(),
                    source,
                }
                .to_string()
            }
        }
        if Instant::now() + RETRY >= deadline {
            return Outcome::GaveUp(last);
        }
        std::thread::sleep(RETRY);
    }
}
