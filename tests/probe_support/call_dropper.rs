//! A real vhost-user backend made to lose interrupts: a proxy between vnetbed's frontend and
//! the backend (DPDK's testpmd). It passes every message and file descriptor on unchanged,
//! except that it gives the backend its own call eventfds (`VHOST_USER_SET_VRING_CALL`) and
//! passes the backend's calls on to vnetbed's, until it is told to drop them. From then on
//! the backend still completes buffers in the guest's rings and signals, and no interrupt
//! reaches vnetbed: the lost interrupt the relay's watchdog must judge from the rings.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// `VHOST_USER_SET_VRING_CALL`.
const SET_VRING_CALL: u32 = 13;
/// In a vring message's u64: no file descriptor comes with it.
const VRING_NOFD: u64 = 0x100;
/// The most descriptors one message carries (`SET_MEM_TABLE`: one per region, at most 8).
const MAX_FDS: usize = 8;
/// The longest message body taken (the protocol's largest is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    dropping: AtomicBool,
    passed: AtomicU64,
    dropped: AtomicU64,
    /// vnetbed's call eventfd of each queue, as its frontend sent it.
    targets: Mutex<[Option<File>; 2]>,
}

/// The proxy: listens on its own socket, connects to the backend's on the first connection.
pub struct CallDropper {
    shared: Arc<Shared>,
    socket: PathBuf,
}

impl CallDropper {
    /// Listen on `socket` (vnetbed's `--vhost-user` goes there) for one frontend, and
    /// connect it to the backend listening on `backend`.
    pub fn start(socket: PathBuf, backend: &Path) -> CallDropper {
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind the proxy's socket");
        let shared = Arc::new(Shared::default());
        let calls = [
            EventFd::new(0).expect("eventfd"),
            EventFd::new(0).expect("eventfd"),
        ];
        for (index, call) in calls.iter().enumerate() {
            let call = call.try_clone().expect("clone an eventfd");
            let shared = shared.clone();
            std::thread::spawn(move || pass_calls(index, call, &shared));
        }
        let backend = backend.to_path_buf();
        let s = shared.clone();
        std::thread::spawn(move || {
            let Ok((frontend, _)) = listener.accept() else {
                return;
            };
            let Ok(backend) = UnixStream::connect(&backend) else {
                return;
            };
            let (Ok(replies_from), Ok(replies_to)) = (backend.try_clone(), frontend.try_clone())
            else {
                return;
            };
            std::thread::spawn(move || forward(&replies_from, &replies_to, None));
            let own = [calls[0].as_raw_fd(), calls[1].as_raw_fd()];
            forward(&frontend, &backend, Some((own, &s)));
        });
        CallDropper { shared, socket }
    }

    /// The socket vnetbed connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// From now on, every call of the backend is dropped.
    pub fn drop_calls(&self) {
        self.shared.dropping.store(true, Ordering::SeqCst);
    }

    /// Calls passed on to vnetbed so far.
    pub fn passed(&self) -> u64 {
        self.shared.passed.load(Ordering::SeqCst)
    }

    /// Calls dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for CallDropper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The backend signalled queue `index`'s call eventfd: pass it on to vnetbed's, or drop it.
fn pass_calls(index: usize, call: EventFd, shared: &Shared) {
    while call.read().is_ok() {
        if shared.dropping.load(Ordering::SeqCst) {
            shared.dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let target = shared.targets.lock().unwrap_or_else(|p| p.into_inner())[index]
            .as_ref()
            .and_then(|f| f.try_clone().ok());
        if let Some(mut target) = target {
            if target.write_all(&1u64.to_ne_bytes()).is_ok() {
                shared.passed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Copy messages from `from` to `to`, descriptors included, until either side closes. With
/// `calls`, a `SET_VRING_CALL` gets the proxy's eventfd in place of vnetbed's, which is kept.
fn forward(from: &UnixStream, to: &UnixStream, calls: Option<([RawFd; 2], &Shared)>) {
    loop {
        let mut header = [0u8; 12];
        let mut fds = [-1 as RawFd; MAX_FDS];
        let mut iov = [libc::iovec {
            iov_base: header.as_mut_ptr().cast(),
            iov_len: header.len(),
        }];
        // SAFETY: the iovec points into `header`, which outlives the call, and any bytes
        // may be written there.
        let Ok((n, count)) = (unsafe { from.recv_with_fds(&mut iov, &mut fds) }) else {
            return;
        };
        // SAFETY: recvmsg gave these descriptors to this process; each is owned once, here.
        let files: Vec<File> = fds[..count]
            .iter()
            .map(|&fd| unsafe { File::from_raw_fd(fd) })
            .collect();
        if n == 0 {
            return;
        }
        let mut reader = from;
        if n < header.len() && reader.read_exact(&mut header[n..]).is_err() {
            return;
        }
        let request = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let size = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        if size > MAX_BODY {
            return;
        }
        let mut message = header.to_vec();
        message.resize(header.len() + size, 0);
        if reader.read_exact(&mut message[header.len()..]).is_err() {
            return;
        }
        let mut send: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        if let Some((own, shared)) = calls {
            if request == SET_VRING_CALL && size >= 8 && files.len() == 1 {
                let mut value = [0u8; 8];
                value.copy_from_slice(&message[12..20]);
                let value = u64::from_le_bytes(value);
                let index = (value & 0xff) as usize;
                if value & VRING_NOFD == 0 && index < 2 {
                    if let Ok(target) = files[0].try_clone() {
                        shared.targets.lock().unwrap_or_else(|p| p.into_inner())[index] =
                            Some(target);
                        send = vec![own[index]];
                    }
                }
            }
        }
        if to.send_with_fds(&[&message[..]], &send).is_err() {
            return;
        }
    }
}
