//! The vhost-user frontend's conversation with the backend, on rust-vmm's `vhost` crate
//! (feature `vhost-user-frontend`): connect, negotiate features and protocol features, send
//! the guest memory table (the memfd regions), set up and stop the two vrings.
//!
//! Every exchange runs under a deadline: a backend that stops answering in the middle of a
//! request has its socket shut down by the [`Deadline`] thread when the deadline passes, so
//! the blocked request fails instead of hanging (the crate retries a receive timeout
//! forever, so socket timeouts would not do). A malformed or short reply is the crate's
//! error, and the backend closing the socket is a broken-socket error.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vhost::vhost_user::message::VhostUserHeaderFlag;
use vhost::vhost_user::{
    Frontend, VhostUserFrontend, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::devices::virtio::queue::QueueConfig;
use crate::devices::virtio::VIRTIO_F_VERSION_1;

/// How long one request may wait for the backend.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocol features vnetbed asks for: REPLY_ACK (every request is acknowledged, so a
/// request the backend refuses is an error at that request, not a silent misconfiguration).
const WANTED_PROTOCOL: VhostUserProtocolFeatures = VhostUserProtocolFeatures::REPLY_ACK;

/// What went wrong talking to the backend.
#[derive(Debug, thiserror::Error)]
pub enum VhostUserError {
    /// The socket could not be reached.
    #[error("cannot connect to the vhost-user backend at {path}: {source}; is the backend running and listening there?")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A request failed: the backend refused it, answered with a malformed message, timed
    /// out or closed the socket.
    #[error("vhost-user {step} failed: {source} (the backend refused the request, sent a malformed reply, did not answer in time ({timeout:?} a request), or closed its socket)", timeout = REQUEST_TIMEOUT)]
    Request {
        /// The request.
        step: &'static str,
        /// The crate's error.
        #[source]
        source: vhost::Error,
    },
    /// The backend does not offer virtio 1.x.
    #[error("the vhost-user backend does not offer VIRTIO_F_VERSION_1 (features {0:#x}); vnetbed's virtio-mmio device is virtio 1.x only")]
    NoVersion1(u64),
    /// A guest memory region has no memfd, or a ring is outside guest memory.
    #[error("vhost-user setup: {0}")]
    Memory(String),
}

fn req(step: &'static str) -> impl FnOnce(vhost::Error) -> VhostUserError {
    move |source| VhostUserError::Request { step, source }
}

#[derive(Default)]
struct DeadlineState {
    /// When the exchange in progress must be over.
    armed: Option<Instant>,
    /// The connection is gone: the thread ends.
    stop: bool,
}

/// A thread that shuts the backend's socket down when an exchange outlives its deadline.
struct Deadline {
    state: Arc<(Mutex<DeadlineState>, Condvar)>,
}

/// An armed deadline; disarmed on drop.
struct Armed<'a>(&'a Deadline);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.set(|s| s.armed = None);
    }
}

impl Deadline {
    /// Watch `socket` (a duplicate of the backend's socket).
    fn spawn(socket: OwnedFd) -> std::io::Result<Self> {
        let state = Arc::new((Mutex::new(DeadlineState::default()), Condvar::new()));
        let watched = state.clone();
        std::thread::Builder::new()
            .name("vhost-deadline".into())
            .spawn(move || {
                crate::seccomp::apply_or_exit(crate::seccomp::ThreadKind::VhostUser);
                let (lock, wake) = &*watched;
                let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if s.stop {
                        return;
                    }
                    s = match s.armed {
                        None => wake.wait(s).unwrap_or_else(|p| p.into_inner()),
                        Some(at) if Instant::now() >= at => {
                            // SAFETY: shutdown(2) on a socket fd this thread owns; no memory
                            // is involved. The blocked request then reads end of file.
                            unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR) };
                            s.armed = None;
                            s
                        }
                        Some(at) => {
                            wake.wait_timeout(s, at.saturating_duration_since(Instant::now()))
                                .unwrap_or_else(|p| p.into_inner())
                                .0
                        }
                    };
                }
            })?;
        Ok(Self { state })
    }

    fn set(&self, f: impl FnOnce(&mut DeadlineState)) {
        let (lock, wake) = &*self.state;
        f(&mut lock.lock().unwrap_or_else(|p| p.into_inner()));
        wake.notify_all();
    }

    /// Arm for an exchange of `requests` requests.
    fn arm(&self, requests: u32) -> Armed<'_> {
        self.set(|s| s.armed = Some(Instant::now() + REQUEST_TIMEOUT * requests));
        Armed(self)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.set(|s| s.stop = true);
    }
}

/// A negotiated connection to a backend.
pub struct Connection {
    frontend: Frontend,
    backend_features: u64,
    protocol: VhostUserProtocolFeatures,
    deadline: Deadline,
}

impl Connection {
    /// Connect to the backend at `path`, take ownership, read its features, negotiate
    /// protocol features and send the memory table of `mem`.
    pub fn connect(path: &Path, mem: &GuestMemoryMmap) -> Result<Self, VhostUserError> {
        let connect_err = |source| VhostUserError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(connect_err)?;
        Self::negotiate(stream, mem)
    }

    /// [`Connection::connect`] over a connected stream.
    pub fn negotiate(stream: UnixStream, mem: &GuestMemoryMmap) -> Result<Self, VhostUserError> {
        let watched =
            OwnedFd::from(
                stream
                    .try_clone()
                    .map_err(|source| VhostUserError::Connect {
                        path: PathBuf::from("(the backend's socket)"),
                        source,
                    })?,
            );
        let deadline = Deadline::spawn(watched).map_err(|source| VhostUserError::Connect {
            path: PathBuf::from("(the backend's socket)"),
            source,
        })?;
        let armed = deadline.arm(2);
        let mut frontend = Frontend::from_stream(stream, 2);
        frontend.set_owner().map_err(req("SET_OWNER"))?;
        let backend_features = frontend.get_features().map_err(req("GET_FEATURES"))?;
        if backend_features & (1 << VIRTIO_F_VERSION_1) == 0 {
            return Err(VhostUserError::NoVersion1(backend_features));
        }
        let mut protocol = VhostUserProtocolFeatures::empty();
        if backend_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0 {
            let offered = frontend
                .get_protocol_features()
                .map_err(req("GET_PROTOCOL_FEATURES"))?;
            protocol = offered & WANTED_PROTOCOL;
            frontend
                .set_protocol_features(protocol)
                .map_err(req("SET_PROTOCOL_FEATURES"))?;
            if protocol.contains(VhostUserProtocolFeatures::REPLY_ACK) {
                frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
            }
        }
        let regions = mem
            .iter()
            .map(|r| {
                VhostUserMemoryRegionInfo::from_guest_region(r).map_err(|e| {
                    VhostUserError::Memory(format!(
                        "guest memory at {:#x} is not shareable (no memfd): {e}",
                        vm_memory::GuestMemoryRegion::start_addr(r).0
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        frontend
            .set_mem_table(&regions)
            .map_err(req("SET_MEM_TABLE"))?;
        drop(armed);
        Ok(Self {
            frontend,
            backend_features,
            protocol,
            deadline,
        })
    }

    /// The backend's virtio features.
    pub fn backend_features(&self) -> u64 {
        self.backend_features
    }

    /// The protocol features both sides use.
    pub fn protocol_features(&self) -> VhostUserProtocolFeatures {
        self.protocol
    }

    /// The socket's fd (the relay polls it to notice the backend going away).
    pub fn socket_fd(&self) -> std::os::fd::RawFd {
        self.frontend.as_raw_fd()
    }

    /// Start the vrings: the features the driver accepted (less those only vnetbed's
    /// device model implements), then per queue its size, addresses, where the backend
    /// starts in the available ring (`bases`: 0 for a freshly activated device; after a
    /// reconnect, the used ring's index), and the call, kick and error eventfds; then enable
    /// the queues when protocol features are in use.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        mem: &GuestMemoryMmap,
        driver_features: u64,
        queues: &[QueueConfig; 2],
        bases: [u16; 2],
        kicks: [&EventFd; 2],
        calls: [&EventFd; 2],
        errs: [&EventFd; 2],
    ) -> Result<(), VhostUserError> {
        let _armed = self.deadline.arm(2);
        let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        let features =
            (driver_features & self.backend_features) | (self.backend_features & protocol_bit);
        self.frontend
            .set_features(features)
            .map_err(req("SET_FEATURES"))?;
        for (i, q) in queues.iter().enumerate() {
            let hva = |gpa: u64, what: &str| -> Result<u64, VhostUserError> {
                mem.get_host_address(GuestAddress(gpa))
                    .map(|p| p as u64)
                    .map_err(|e| {
                        VhostUserError::Memory(format!(
                            "queue {i} {what} at {gpa:#x} is outside guest memory: {e}"
                        ))
                    })
            };
            let config = VringConfigData {
                queue_max_size: q.size,
                queue_size: q.size,
                flags: 0,
                desc_table_addr: hva(q.desc_table, "descriptor table")?,
                used_ring_addr: hva(q.used_ring, "used ring")?,
                avail_ring_addr: hva(q.avail_ring, "available ring")?,
                log_addr: None,
            };
            self.frontend
                .set_vring_num(i, q.size)
                .map_err(req("SET_VRING_NUM"))?;
            self.frontend
                .set_vring_addr(i, &config)
                .map_err(req("SET_VRING_ADDR"))?;
            self.frontend
                .set_vring_base(i, bases[i])
                .map_err(req("SET_VRING_BASE"))?;
            self.frontend
                .set_vring_call(i, calls[i])
                .map_err(req("SET_VRING_CALL"))?;
            self.frontend
                .set_vring_err(i, errs[i])
                .map_err(req("SET_VRING_ERR"))?;
            self.frontend
                .set_vring_kick(i, kicks[i])
                .map_err(req("SET_VRING_KICK"))?;
        }
        if features & protocol_bit != 0 {
            for i in 0..queues.len() {
                self.frontend
                    .set_vring_enable(i, true)
                    .map_err(req("SET_VRING_ENABLE"))?;
            }
        }
        Ok(())
    }

    /// Stop both vrings (GET_VRING_BASE), as on a device reset; returns where the backend
    /// stopped in each available ring.
    pub fn stop(&mut self) -> Result<[u32; 2], VhostUserError> {
        let _armed = self.deadline.arm(1);
        let rx = self
            .frontend
            .get_vring_base(0)
            .map_err(req("GET_VRING_BASE"))?;
        let tx = self
            .frontend
            .get_vring_base(1)
            .map_err(req("GET_VRING_BASE"))?;
        Ok([rx, tx])
    }
}
