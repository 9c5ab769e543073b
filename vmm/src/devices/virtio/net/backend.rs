//! The packet backend behind a virtio-net device: one frame per read or write on a
//! non-blocking file descriptor — a tap (see [`super::tap`]) or, where a tap is not the point
//! (tests, benchmarks), one end of an `AF_UNIX` `SOCK_SEQPACKET` socket pair.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A frame source and sink with an fd for epoll.
pub trait NetBackend: Send + AsRawFd {
    /// Read one frame into `buf`; `WouldBlock` when none is queued.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write one frame; `WouldBlock` when the backend cannot take it now.
    fn send(&mut self, frame: &[u8]) -> io::Result<usize>;
}

/// A backend over a frame-preserving, non-blocking fd (tap or seqpacket socket).
#[derive(Debug)]
pub struct FdBackend {
    fd: OwnedFd,
}

impl FdBackend {
    /// Wrap `fd`, which must be frame-preserving; it is switched to non-blocking mode.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Self { fd })
    }
}

impl AsRawFd for FdBackend {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl NetBackend for FdBackend {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes for the whole call and
        // the fd is owned by `self`.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: `frame` is a valid readable buffer of `frame.len()` bytes; the fd is owned.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Put `fd` in non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a valid fd have no memory-safety preconditions.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A connected `SOCK_SEQPACKET` pair: a device backend and the peer end (blocking) that
/// plays the network. `sndbuf` sizes both ends' send buffers (bytes).
pub fn socketpair_backend(sndbuf: usize) -> io::Result<(FdBackend, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&a, &b] {
        let size = sndbuf as libc::c_int;
        // SAFETY: setsockopt reads `size` (a c_int) for the length given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    Ok((FdBackend::new(a)?, b))
}
