//! Throwaway network namespaces and an AF_PACKET peer on a tap, for tests and benchmarks that
//! need a real tap. Everything is torn down on drop (also on panic).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::test_driver::wait_readable;

/// A network namespace `vnetbed-t<pid>-<n>`, deleted on drop.
#[derive(Debug)]
pub struct Netns(String);

impl Netns {
    /// Create it, with IPv6 disabled (no autoconfiguration chatter on test links).
    pub fn create() -> io::Result<Netns> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "vnetbed-t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        for key in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            run(Command::new("ip").args(["netns", "exec", &ns.0, "sysctl", "-qw", key]))?;
        }
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let st = cmd.status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{cmd:?} failed: {st}")))
    }
}

/// Run `ip ARGS`.
pub fn ip(args: &[&str]) -> io::Result<()> {
    run(Command::new("ip").args(args))
}

fn check(r: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(r)
}

/// An AF_PACKET socket bound to `ifname` inside netns `ns`, with a 16 MiB receive buffer.
pub fn packet_socket(ns: &str, ifname: &str) -> io::Result<OwnedFd> {
    let ifname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    crate::netns::run_in(ns, || packet_socket_here(&ifname)).map_err(io::Error::other)?
}

/// [`packet_socket`] in the calling thread's network namespace.
fn packet_socket_here(ifname: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket takes integer arguments only and returns a new fd or -1 (checked).
    let fd = check(
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) },
        "socket",
    )?;
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ifname` is a valid NUL-terminated string that lives across the call, which
    // only reads it.
    let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::other("no such interface"));
    }
    // SAFETY: sockaddr_ll is plain old data, for which all-zero bytes are a valid value;
    // the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: `sll` is a valid sockaddr_ll, of the size given, that outlives the call; bind
    // only reads it.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    check(r, "bind")?;
    let size: libc::c_int = 16 << 20;
    // SAFETY: setsockopt reads one c_int of the size given, which lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    check(r, "SO_RCVBUFFORCE")?;
    Ok(fd)
}

/// Receive one frame that entered the interface (not one this host sent), waiting up to
/// `timeout_ms`.
pub fn recv_incoming(fd: RawFd, buf: &mut [u8], timeout_ms: i32) -> Option<usize> {
    loop {
        if !wait_readable(fd, timeout_ms) {
            return None;
        }
        // SAFETY: an all-zero sockaddr_ll is valid for recvfrom to fill.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: valid buffer and address storage for the sizes given.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n > 0 && from.sll_pkttype != libc::PACKET_OUTGOING {
            return Some(n as usize);
        }
    }
}
