//! A hostile vhost-user backend: it closes its socket in the middle of the negotiation,
//! answers with malformed messages, offers no virtio 1.x, or never answers. `vnetbed run
//! --vhost-user` must end with a clear error (status 2) naming the request, never hang or
//! panic. The backend is a small peer in the test speaking the wire format by hand.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{require, vnetbed, Capability};

/// vhost-user requests (the spec's numbering).
const GET_FEATURES: u32 = 1;
const SET_OWNER: u32 = 3;
/// Header flags: protocol version 1, and "this is a reply".
const VERSION_1: u32 = 0x1;
const REPLY: u32 = 0x4;

/// What the peer does once the frontend has sent SET_OWNER and GET_FEATURES.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Close the socket instead of answering GET_FEATURES.
    CloseMidNegotiation,
    /// Answer GET_FEATURES with a reply to another request and a wrong size.
    MalformedReply,
    /// Answer GET_FEATURES correctly, but without VIRTIO_F_VERSION_1.
    NoVersion1,
    /// Never answer.
    Silent,
}

fn header(stream: &mut UnixStream) -> Option<[u32; 3]> {
    let mut h = [0u8; 12];
    stream.read_exact(&mut h).ok()?;
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let (request, flags, size) = (word(0), word(4), word(8));
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).ok()?;
    Some([request, flags, size])
}

fn reply(stream: &mut UnixStream, request: u32, size: u32, body: &[u8]) {
    let mut msg = Vec::new();
    for w in [request, VERSION_1 | REPLY, size] {
        msg.extend_from_slice(&w.to_le_bytes());
    }
    msg.extend_from_slice(body);
    let _ = stream.write_all(&msg);
}

/// Serve one connection on `socket` with `how`, in a thread.
fn hostile_backend(socket: &PathBuf, how: Misbehaviour) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let Some([SET_OWNER, ..]) = header(&mut s) else {
            return;
        };
        let Some([GET_FEATURES, ..]) = header(&mut s) else {
            return;
        };
        match how {
            Misbehaviour::CloseMidNegotiation => drop(s),
            Misbehaviour::MalformedReply => reply(&mut s, SET_OWNER, 3, &[1, 2, 3]),
            Misbehaviour::NoVersion1 => {
                reply(&mut s, GET_FEATURES, 8, &(1u64 << 28).to_le_bytes());
                let _ = s.read(&mut [0u8; 64]);
            }
            Misbehaviour::Silent => {
                // Hold the connection open, answering nothing, until the frontend gives up.
                let _ = s.read(&mut [0u8; 64]);
            }
        }
    })
}

#[test]
fn a_hostile_backend_gets_a_clear_error_never_a_hang_or_a_panic() {
    if !require(
        "a_hostile_backend_gets_a_clear_error_never_a_hang_or_a_panic",
        &[Capability::Kvm],
    ) {
        return;
    }
    for (how, words) in [
        (Misbehaviour::CloseMidNegotiation, "GET_FEATURES failed"),
        (Misbehaviour::MalformedReply, "GET_FEATURES failed"),
        (
            Misbehaviour::NoVersion1,
            "does not offer VIRTIO_F_VERSION_1",
        ),
        (Misbehaviour::Silent, "GET_FEATURES failed"),
    ] {
        let socket = std::env::temp_dir().join(format!(
            "vnetbed-hostile-{}-{how:?}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&socket);
        let peer = hostile_backend(&socket, how);
        let started = Instant::now();
        let mut child: std::process::Child = vnetbed()
            .args(["run", "--kernel", "builtin:hang", "--serial", "none"])
            .arg("--vhost-user")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The request timeout is 5 s: well within 60 s on any machine, or it hangs.
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&socket);
                panic!("{how:?}: vnetbed run hung on a hostile backend");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let _ = std::fs::remove_file(&socket);
        let _ = peer.join();
        assert_eq!(status.code(), Some(2), "{how:?}: {stderr}");
        assert!(
            stderr.contains("--vhost-user") && stderr.contains(words),
            "{how:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{how:?}: {stderr}");
    }
}

#[test]
fn no_backend_listening_is_a_clear_error() {
    if !require("no_backend_listening_is_a_clear_error", &[Capability::Kvm]) {
        return;
    }
    let o: std::process::Output = vnetbed()
        .args(["run", "--kernel", "builtin:hang", "--serial", "none"])
        .args(["--vhost-user", "/nonexistent/vnetbed-backend.sock"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "cannot connect to the vhost-user backend at /nonexistent/vnetbed-backend.sock"
        ),
        "{stderr}"
    );
}

/// The vhost-user threads run confined: the seccomp self-test hook, naming their kind, makes
/// the deadline thread (started as the negotiation begins) call uname, which its filter
/// forbids: exit status 12 and the thread named.
#[test]
fn the_vhost_user_threads_are_confined() {
    if !require("the_vhost_user_threads_are_confined", &[Capability::Kvm]) {
        return;
    }
    let socket = std::env::temp_dir().join(format!(
        "vnetbed-hostile-{}-seccomp.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&socket);
    let peer = hostile_backend(&socket, Misbehaviour::Silent);
    let o = vnetbed()
        .args(["run", "--kernel", "builtin:hang", "--serial", "none"])
        .arg("--vhost-user")
        .arg(&socket)
        .env("VNETBED_SECCOMP_SELFTEST", "vhost-user")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&socket);
    let _ = peer.join();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(12), "{stderr}");
    assert!(
        stderr.contains(
            "the vhost-user thread `vhost-deadline` made the forbidden system call uname"
        ),
        "{stderr}"
    );
}
