//! A hostile vhost-user backend: it closes its socket in the middle of the negotiation,
//! answers with malformed messages, offers no virtio 1.x, or never answers. `vnetbed run
//! --vhost-user` must end with a clear error (status 2) naming the request, never hang or
//! panic. The backend is a small peer in the test speaking the wire format by hand.
//!
//! After a complete negotiation, a backend that closes its socket ends the VM with status 14
//! (no `reconnect=`), or is waited for with `reconnect=SECS`: one that comes back and drops
//! the renegotiation, or comes back offering fewer features, still ends it with 14 and the
//! reason.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use common::{bounded, require, vnetbed, Capability};

/// vhost-user requests (the spec's numbering).
const GET_FEATURES: u32 = 1;
const SET_OWNER: u32 = 3;
const SET_MEM_TABLE: u32 = 5;
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
        // The request timeout is 5 s: well within 60 s on any machine, or it hangs.
        let mut run = vnetbed();
        run.args(["run", "--kernel", "builtin:hang", "--serial", "none"])
            .arg("--vhost-user")
            .arg(&socket);
        let (status, stderr) = bounded(run, Duration::from_secs(60));
        let _ = std::fs::remove_file(&socket);
        assert!(
            status.is_some(),
            "{how:?}: vnetbed run hung on a hostile backend"
        );
        let _ = peer.join();
        assert_eq!(status, Some(2), "{how:?}: {stderr}");
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

/// virtio feature bits the renegotiation tests offer.
const F_VERSION_1: u64 = 1 << 32;
const F_EVENT_IDX: u64 = 1 << 29;

/// What a reconnection peer does on one connection.
#[derive(Clone, Copy, Debug)]
enum Session {
    /// Negotiate (SET_OWNER, GET_FEATURES answered with these features, SET_MEM_TABLE),
    /// then close the socket.
    NegotiateThenClose(u64),
    /// Close the socket after SET_OWNER, before answering GET_FEATURES.
    DropAfterOwner,
}

/// Serve connections on `socket`: the first with `first`, every later one with `later`,
/// until `stop` is set. Returns how many connections it served.
fn reconnecting_backend(
    socket: &PathBuf,
    first: Session,
    later: Session,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let listener = UnixListener::bind(socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut served = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let mut s = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let how = if served == 0 { first } else { later };
            served += 1;
            let Some([SET_OWNER, ..]) = header(&mut s) else {
                continue;
            };
            match how {
                Session::DropAfterOwner => drop(s),
                Session::NegotiateThenClose(features) => {
                    let Some([GET_FEATURES, ..]) = header(&mut s) else {
                        continue;
                    };
                    reply(&mut s, GET_FEATURES, 8, &features.to_le_bytes());
                    // No PROTOCOL_FEATURES offered: nothing is acknowledged; the memory
                    // table's descriptors are dropped with the message.
                    let Some([SET_MEM_TABLE, ..]) = header(&mut s) else {
                        continue;
                    };
                    drop(s);
                }
            }
        }
        served
    })
}

/// Run `vnetbed run --kernel builtin:hang --vhost-user SPEC` against a peer; returns its
/// status, stderr and event stream.
fn run_against(
    name: &str,
    first: Session,
    later: Session,
    options: &str,
) -> (Option<i32>, String, String, usize) {
    let socket = std::env::temp_dir().join(format!(
        "vnetbed-hostile-{}-{name}.sock",
        std::process::id()
    ));
    let events = socket.with_extension("events");
    let _ = std::fs::remove_file(&socket);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peer = reconnecting_backend(&socket, first, later, stop.clone());
    let mut run = vnetbed();
    run.args(["run", "--kernel", "builtin:hang", "--serial", "none"])
        .arg("--vhost-user")
        .arg(format!("{}{options}", socket.display()))
        .arg("--events")
        .arg(&events);
    let (status, stderr) = bounded(run, Duration::from_secs(60));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if status.is_none() {
        let _ = std::fs::remove_file(&socket);
        panic!("{name}: vnetbed run hung");
    }
    let served = peer.join().unwrap();
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&events);
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    (status, stderr, text, served)
}

#[test]
fn without_reconnect_a_backend_that_closes_its_socket_ends_the_vm_with_14() {
    if !require(
        "without_reconnect_a_backend_that_closes_its_socket_ends_the_vm_with_14",
        &[Capability::Kvm],
    ) {
        return;
    }
    let (code, stderr, events, served) = run_against(
        "noreconnect",
        Session::NegotiateThenClose(F_VERSION_1),
        Session::NegotiateThenClose(F_VERSION_1),
        "",
    );
    assert_eq!(code, Some(14), "{stderr}");
    assert!(stderr.contains("closed its vhost-user socket"), "{stderr}");
    assert!(events.contains("\"kind\":\"backend_died\""), "{events}");
    assert!(!events.contains("\"event\":\"backend\""), "{events}");
    assert_eq!(served, 1);
}

#[test]
fn a_backend_that_drops_the_renegotiation_ends_the_vm_with_14_at_the_deadline() {
    if !require(
        "a_backend_that_drops_the_renegotiation_ends_the_vm_with_14_at_the_deadline",
        &[Capability::Kvm],
    ) {
        return;
    }
    let (code, stderr, events, served) = run_against(
        "dropreneg",
        Session::NegotiateThenClose(F_VERSION_1),
        Session::DropAfterOwner,
        ",reconnect=1",
    );
    assert_eq!(code, Some(14), "{stderr}");
    assert!(
        stderr.contains("no backend came back within 1 s")
            && stderr.contains("GET_FEATURES failed"),
        "{stderr}"
    );
    assert!(events.contains("\"state\":\"disconnected\""), "{events}");
    assert!(!events.contains("\"state\":\"reconnected\""), "{events}");
    // It was tried again, more than once, within the second.
    assert!(served >= 2, "{served} connections");
}

#[test]
fn a_backend_that_comes_back_with_fewer_features_ends_the_vm_with_14() {
    if !require(
        "a_backend_that_comes_back_with_fewer_features_ends_the_vm_with_14",
        &[Capability::Kvm],
    ) {
        return;
    }
    let (code, stderr, events, served) = run_against(
        "fewer",
        Session::NegotiateThenClose(F_VERSION_1 | F_EVENT_IDX),
        Session::NegotiateThenClose(F_VERSION_1),
        ",reconnect=5",
    );
    assert_eq!(code, Some(14), "{stderr}");
    assert!(
        stderr
            .contains("the backend that came back offers features 0x100000000, without 0x20000000"),
        "{stderr}"
    );
    assert!(events.contains("\"state\":\"disconnected\""), "{events}");
    assert_eq!(served, 2);
}

/// The reconnecting thread runs confined too (it is started at attach with `reconnect=`):
/// the self-test hook makes it call uname, which its filter forbids.
#[test]
fn the_reconnecting_thread_is_confined() {
    if !require("the_reconnecting_thread_is_confined", &[Capability::Kvm]) {
        return;
    }
    let socket = std::env::temp_dir().join(format!(
        "vnetbed-hostile-{}-seccomp-reconnect.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&socket);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let session = Session::NegotiateThenClose(F_VERSION_1);
    let peer = reconnecting_backend(&socket, session, session, stop.clone());
    let o = vnetbed()
        .args(["run", "--kernel", "builtin:hang", "--serial", "none"])
        .arg("--vhost-user")
        .arg(format!("{},reconnect=5", socket.display()))
        .env("VNETBED_SECCOMP_SELFTEST", "vhost-reconnect")
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = peer.join();
    let _ = std::fs::remove_file(&socket);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(12), "{stderr}");
    assert!(
        stderr.contains(
            "the vhost-reconnect thread `vhost-reconnect` made the forbidden system call uname"
        ),
        "{stderr}"
    );
}
