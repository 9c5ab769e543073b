//! An iperf3-compatible server on port 5201 over smoltcp, one test at a time like
//! `iperf3 -s`: TCP and UDP, normal and reverse (`-R`), `-P` up to 4, `-t`/`-n`/`-k`.
//! The wire format lives in `probe::iperf3_proto` (host-tested).

use core::fmt::Write;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpEndpoint;

use crate::agent::Event;
use crate::statics::Once;
use crate::{idle, time};
use probe::iperf3_proto::{
    self as proto, state, Protocol, ServerResults, StreamResult, TestParams, UdpHeader,
    UdpReceiver, COOKIE_LEN, MAX_STREAMS,
};

/// The iperf3 port.
pub const PORT: u16 = 5201;
const CONTROL_BUFFER: usize = 16 * 1024;
const DATA_BUFFER: usize = 256 * 1024;
const UDP_PACKETS: usize = 256;
const UDP_BUFFER: usize = 512 * 1024;
/// Abort a test that runs this long past its announced duration.
const WATCHDOG_GRACE_US: u64 = 30_000_000;
/// Sleep granularity of the UDP pacer (datagrams due meanwhile go out in one burst).
const PACING_US: u64 = 1_000;

static CONTROL_RX: Once<[u8; CONTROL_BUFFER]> = Once::new([0; CONTROL_BUFFER]);
static CONTROL_TX: Once<[u8; CONTROL_BUFFER]> = Once::new([0; CONTROL_BUFFER]);
static DATA_RX: Once<[[u8; DATA_BUFFER]; MAX_STREAMS]> = Once::new([[0; DATA_BUFFER]; MAX_STREAMS]);
static DATA_TX: Once<[[u8; DATA_BUFFER]; MAX_STREAMS]> = Once::new([[0; DATA_BUFFER]; MAX_STREAMS]);
static UDP_RX_META: Once<[udp::PacketMetadata; UDP_PACKETS]> =
    Once::new([udp::PacketMetadata::EMPTY; UDP_PACKETS]);
static UDP_TX_META: Once<[udp::PacketMetadata; UDP_PACKETS]> =
    Once::new([udp::PacketMetadata::EMPTY; UDP_PACKETS]);
static UDP_RX: Once<[u8; UDP_BUFFER]> = Once::new([0; UDP_BUFFER]);
static UDP_TX: Once<[u8; UDP_BUFFER]> = Once::new([0; UDP_BUFFER]);
/// Bytes of the control message being assembled.
static MESSAGE: Once<[u8; CONTROL_BUFFER]> = Once::new([0; CONTROL_BUFFER]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a client.
    Listening,
    /// Reading the control cookie.
    Cookie,
    /// Reading the parameter JSON.
    Params,
    /// Waiting for the data streams.
    Streams,
    /// Moving data.
    Running,
    /// Reading the client's results JSON.
    ClientResults,
    /// Waiting for IPERF_DONE.
    Done,
}

#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    /// UDP: the client's endpoint.
    udp_peer: Option<IpEndpoint>,
    /// TCP: index into `Server::data`.
    tcp: Option<usize>,
    bytes: u64,
    packets: u64,
    udp: UdpReceiver,
}

/// The server.
pub struct Server {
    control: SocketHandle,
    data: [SocketHandle; MAX_STREAMS],
    udp: SocketHandle,
    phase: Phase,
    params: Option<TestParams>,
    cookie: [u8; COOKIE_LEN],
    message: &'static mut [u8; CONTROL_BUFFER],
    message_len: usize,
    streams: [Stream; MAX_STREAMS],
    stream_count: usize,
    start_us: u64,
    end_us: u64,
    idle_at_start: u64,
    idle_at_end: u64,
    udp_sent: u64,
    tests: u64,
}

impl Server {
    /// Create the sockets and listen on port 5201.
    pub fn new(sockets: &mut SocketSet<'static>) -> Self {
        let control = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(&mut CONTROL_RX.take()[..]),
            tcp::SocketBuffer::new(&mut CONTROL_TX.take()[..]),
        ));
        let rx = DATA_RX.take();
        let tx = DATA_TX.take();
        let mut data = [control; MAX_STREAMS];
        for ((slot, rx), tx) in data.iter_mut().zip(rx.iter_mut()).zip(tx.iter_mut()) {
            *slot = sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            ));
        }
        let mut udp_socket = udp::Socket::new(
            udp::PacketBuffer::new(&mut UDP_RX_META.take()[..], &mut UDP_RX.take()[..]),
            udp::PacketBuffer::new(&mut UDP_TX_META.take()[..], &mut UDP_TX.take()[..]),
        );
        // Binding a fresh socket to a port cannot fail.
        let _ = udp_socket.bind(PORT);
        let udp = sockets.add(udp_socket);
        let mut server = Server {
            control,
            data,
            udp,
            phase: Phase::Listening,
            params: None,
            cookie: [0; COOKIE_LEN],
            message: MESSAGE.take(),
            message_len: 0,
            streams: [Stream::default(); MAX_STREAMS],
            stream_count: 0,
            start_us: 0,
            end_us: 0,
            idle_at_start: 0,
            idle_at_end: 0,
            udp_sent: 0,
            tests: 0,
        };
        server.reset(sockets);
        Event::new("iperf3")
            .str("state", "listening")
            .u64("port", u64::from(PORT))
            .emit();
        server
    }

    /// Back to listening for the next client.
    fn reset(&mut self, sockets: &mut SocketSet<'static>) {
        for handle in self.data {
            sockets.get_mut::<tcp::Socket>(handle).abort();
        }
        let control = sockets.get_mut::<tcp::Socket>(self.control);
        control.abort();
        // A closed socket can always listen on a valid port.
        let _ = control.listen(PORT);
        // Drop stale datagrams.
        let udp_socket = sockets.get_mut::<udp::Socket>(self.udp);
        while udp_socket.recv().is_ok() {}
        self.phase = Phase::Listening;
        self.params = None;
        self.message_len = 0;
        self.streams = [Stream::default(); MAX_STREAMS];
        self.stream_count = 0;
        self.udp_sent = 0;
    }

    fn abort(&mut self, sockets: &mut SocketSet<'static>, reason: &str) {
        Event::new("iperf3")
            .str("state", "aborted")
            .str("reason", reason)
            .emit();
        let control = sockets.get_mut::<tcp::Socket>(self.control);
        if control.may_send() {
            let _ = control.send_slice(&[state::SERVER_TERMINATE]);
        }
        self.reset(sockets);
    }

    /// Do whatever is due.
    pub fn poll(&mut self, sockets: &mut SocketSet<'static>, now_us: u64) {
        let control = sockets.get_mut::<tcp::Socket>(self.control);
        if self.phase != Phase::Listening && !control.may_recv() && !control.can_recv() {
            self.abort(sockets, "control connection closed");
            return;
        }
        match self.phase {
            Phase::Listening => {
                if control.state() == tcp::State::Established {
                    self.phase = Phase::Cookie;
                    self.message_len = 0;
                }
            }
            Phase::Cookie => {
                if self.read_exact(sockets, COOKIE_LEN) {
                    self.cookie.copy_from_slice(&self.message[..COOKIE_LEN]);
                    self.message_len = 0;
                    self.send_state(sockets, state::PARAM_EXCHANGE);
                    self.phase = Phase::Params;
                }
            }
            Phase::Params => {
                if let Some(len) = self.read_json(sockets) {
                    match proto::parse_params(&self.message[4..4 + len]) {
                        Ok(params) => self.start_streams(sockets, params),
                        Err(error) => {
                            Event::new("iperf3")
                                .str("state", "refused")
                                .fmt("reason", format_args!("{error}"))
                                .emit();
                            self.send_state(sockets, state::ACCESS_DENIED);
                            self.reset(sockets);
                        }
                    }
                }
            }
            Phase::Streams => self.accept_streams(sockets, now_us),
            Phase::Running => self.run(sockets, now_us),
            Phase::ClientResults => {
                if self.read_json(sockets).is_some() {
                    self.message_len = 0;
                    self.send_results(sockets);
                    self.send_state(sockets, state::DISPLAY_RESULTS);
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {
                if self.read_exact(sockets, 1) {
                    let message = self.message[0];
                    self.message_len = 0;
                    if message == state::IPERF_DONE {
                        self.report_end();
                        self.reset(sockets);
                    }
                }
            }
        }
    }

    /// Microseconds until the server needs the CPU again, if it is pacing UDP.
    pub fn poll_delay_us(&self, now_us: u64) -> Option<u64> {
        let params = self.params?;
        if self.phase != Phase::Running
            || !params.reverse
            || params.protocol != Protocol::Udp
            || params.bandwidth == 0
        {
            return None;
        }
        let next_due_us = (self.udp_sent + params.len as u64) * 8 * 1_000_000 / params.bandwidth;
        Some(
            next_due_us
                .saturating_sub(now_us.saturating_sub(self.start_us))
                .max(PACING_US),
        )
    }

    /// Accumulate control bytes until `len` are there.
    fn read_exact(&mut self, sockets: &mut SocketSet<'static>, len: usize) -> bool {
        let control = sockets.get_mut::<tcp::Socket>(self.control);
        while self.message_len < len {
            match control.recv_slice(&mut self.message[self.message_len..len]) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.message_len += n,
            }
        }
        true
    }

    /// Accumulate a length-prefixed JSON message; returns its length once complete.
    fn read_json(&mut self, sockets: &mut SocketSet<'static>) -> Option<usize> {
        if !self.read_exact(sockets, 4) {
            return None;
        }
        let len = u32::from_be_bytes([
            self.message[0],
            self.message[1],
            self.message[2],
            self.message[3],
        ]) as usize;
        if len > CONTROL_BUFFER - 4 {
            self.abort(sockets, "control message too long");
            return None;
        }
        self.read_exact(sockets, 4 + len).then_some(len)
    }

    fn send_state(&mut self, sockets: &mut SocketSet<'static>, value: u8) {
        // The control tx buffer (16 KiB) always has room for the few bytes in flight.
        let _ = sockets
            .get_mut::<tcp::Socket>(self.control)
            .send_slice(&[value]);
    }

    fn start_streams(&mut self, sockets: &mut SocketSet<'static>, params: TestParams) {
        self.params = Some(params);
        self.message_len = 0;
        if params.protocol == Protocol::Tcp {
            for handle in &self.data[..params.parallel] {
                // Closed sockets (reset) can listen.
                let _ = sockets.get_mut::<tcp::Socket>(*handle).listen(PORT);
            }
        }
        self.send_state(sockets, state::CREATE_STREAMS);
        self.phase = Phase::Streams;
    }

    fn accept_streams(&mut self, sockets: &mut SocketSet<'static>, now_us: u64) {
        let Some(params) = self.params else { return };
        match params.protocol {
            Protocol::Tcp => {
                for (index, handle) in self.data[..params.parallel].iter().enumerate() {
                    let socket = sockets.get_mut::<tcp::Socket>(*handle);
                    if self
                        .streams
                        .iter()
                        .take(self.stream_count)
                        .any(|s| s.tcp == Some(index))
                    {
                        continue;
                    }
                    // The cookie (37 bytes) comes first, in one segment in practice; wait
                    // until all of it is there.
                    if socket.recv_queue() < COOKIE_LEN {
                        continue;
                    }
                    let mut cookie = [0u8; COOKIE_LEN];
                    if socket.recv_slice(&mut cookie) != Ok(COOKIE_LEN) || cookie != self.cookie {
                        // Not this test's client: drop it and listen again.
                        socket.abort();
                        let _ = socket.listen(PORT);
                        continue;
                    }
                    self.streams[self.stream_count] = Stream {
                        tcp: Some(index),
                        ..Stream::default()
                    };
                    self.stream_count += 1;
                }
            }
            Protocol::Udp => {
                let socket = sockets.get_mut::<udp::Socket>(self.udp);
                while let Ok((datagram, meta)) = socket.recv() {
                    let Some(reply) = proto::udp_connect_reply(datagram) else {
                        continue;
                    };
                    let peer = meta.endpoint;
                    if self
                        .streams
                        .iter()
                        .take(self.stream_count)
                        .any(|s| s.udp_peer == Some(peer))
                    {
                        continue;
                    }
                    if self.stream_count < params.parallel {
                        self.streams[self.stream_count] = Stream {
                            udp_peer: Some(peer),
                            ..Stream::default()
                        };
                        self.stream_count += 1;
                        let _ = socket.send_slice(&reply, peer);
                    }
                }
            }
        }
        if self.stream_count == params.parallel {
            self.send_state(sockets, state::TEST_START);
            self.send_state(sockets, state::TEST_RUNNING);
            self.phase = Phase::Running;
            self.start_us = now_us;
            self.idle_at_start = idle::idle_ticks();
            self.tests += 1;
            let peer = sockets
                .get_mut::<tcp::Socket>(self.control)
                .remote_endpoint();
            let mut event = Event::new("iperf3")
                .str("state", "start")
                .u64("test", self.tests)
                .str(
                    "protocol",
                    if params.protocol == Protocol::Tcp {
                        "tcp"
                    } else {
                        "udp"
                    },
                )
                .bool("reverse", params.reverse)
                .u64("parallel", params.parallel as u64)
                .u64("time_s", params.time_s)
                .u64("len", params.len as u64)
                .u64("bandwidth", params.bandwidth);
            if let Some(peer) = peer {
                event = event.fmt("client", format_args!("{}", peer.addr));
            }
            event.emit();
        }
    }

    fn run(&mut self, sockets: &mut SocketSet<'static>, now_us: u64) {
        let Some(params) = self.params else { return };
        // Control first: TEST_END stops the data.
        if self.read_exact(sockets, 1) {
            let message = self.message[0];
            self.message_len = 0;
            match message {
                state::TEST_END => {
                    self.end_us = now_us;
                    self.idle_at_end = idle::idle_ticks();
                    if params.reverse {
                        // Like `iperf3 -s`, close the data connections before the
                        // exchange (see `finish_sending`).
                        self.finish_sending(sockets, params);
                    } else {
                        // Drain what already arrived, then report.
                        self.move_data(sockets, params, now_us);
                    }
                    self.send_state(sockets, state::EXCHANGE_RESULTS);
                    self.phase = Phase::ClientResults;
                    return;
                }
                state::CLIENT_TERMINATE => {
                    self.abort(sockets, "client terminated the test");
                    return;
                }
                _ => {}
            }
        }
        let limit_us = (params.time_s + params.omit_s) * 1_000_000 + WATCHDOG_GRACE_US;
        if params.bytes == 0
            && params.blocks == 0
            && now_us.saturating_sub(self.start_us) > limit_us
        {
            self.abort(sockets, "test ran far past its duration");
            return;
        }
        self.move_data(sockets, params, now_us);
    }

    /// End a reverse test's data: send FIN on each TCP data connection after what is
    /// already queued (UDP has nothing to end).
    ///
    /// The client (iperf3 3.12 at least) makes its data sockets blocking when its test
    /// time is up, sends TEST_END, and until it reads EXCHANGE_RESULTS goes on reading
    /// each readable data socket with a read loop that returns only once a whole `-l`
    /// block (128 KiB by default) has arrived, or at end of stream. Its block boundaries
    /// are not the server's to know: while the test ran, the sockets were non-blocking
    /// and each read returned whatever had arrived. A data stream that just stops mid
    /// block therefore leaves the client blocked in read() for good, never reading
    /// EXCHANGE_RESULTS. The end of stream ends that read at any length, as it does
    /// against `iperf3 -s`, which closes its data sockets on TEST_END.
    fn finish_sending(&mut self, sockets: &mut SocketSet<'static>, params: TestParams) {
        if params.protocol != Protocol::Tcp {
            return;
        }
        for stream in self.streams.iter().take(self.stream_count) {
            let Some(index) = stream.tcp else { continue };
            // close() sends FIN once the queued bytes are out; the socket still
            // receives, and `reset` aborts it after the test.
            sockets.get_mut::<tcp::Socket>(self.data[index]).close();
        }
    }

    fn move_data(&mut self, sockets: &mut SocketSet<'static>, params: TestParams, now_us: u64) {
        match (params.protocol, params.reverse) {
            (Protocol::Tcp, false) => {
                for stream in self.streams.iter_mut().take(self.stream_count) {
                    let Some(index) = stream.tcp else { continue };
                    let socket = sockets.get_mut::<tcp::Socket>(self.data[index]);
                    // Discard the payload; only its length matters.
                    while let Ok(n) = socket.recv(|buf| (buf.len(), buf.len())) {
                        if n == 0 {
                            break;
                        }
                        stream.bytes += n as u64;
                    }
                }
            }
            (Protocol::Tcp, true) => {
                if self.phase != Phase::Running {
                    return;
                }
                for stream in self.streams.iter_mut().take(self.stream_count) {
                    let Some(index) = stream.tcp else { continue };
                    let socket = sockets.get_mut::<tcp::Socket>(self.data[index]);
                    // Queue whatever the buffer holds as payload (its bytes are arbitrary).
                    while let Ok(n) = socket.send(|buf| (buf.len(), buf.len())) {
                        if n == 0 {
                            break;
                        }
                        stream.bytes += n as u64;
                    }
                }
            }
            (Protocol::Udp, false) => {
                let socket = sockets.get_mut::<udp::Socket>(self.udp);
                let arrival_s = now_us as f64 / 1e6;
                while let Ok((datagram, meta)) = socket.recv() {
                    let Some(stream) = self
                        .streams
                        .iter_mut()
                        .take(self.stream_count)
                        .find(|s| s.udp_peer == Some(meta.endpoint))
                    else {
                        continue;
                    };
                    let Some(header) = UdpHeader::parse(datagram, params.udp_counters_64bit) else {
                        continue;
                    };
                    stream.bytes += datagram.len() as u64;
                    stream.packets += 1;
                    stream.udp.record(&header, arrival_s);
                }
            }
            (Protocol::Udp, true) => {
                if self.phase != Phase::Running {
                    return;
                }
                self.send_udp(sockets, params, now_us);
            }
        }
    }

    /// Send the datagrams due by now at the target rate (all streams share it evenly).
    fn send_udp(&mut self, sockets: &mut SocketSet<'static>, params: TestParams, now_us: u64) {
        let socket = sockets.get_mut::<udp::Socket>(self.udp);
        let elapsed_us = now_us.saturating_sub(self.start_us);
        let header_len = UdpHeader::len(params.udp_counters_64bit);
        let len = params.len.max(header_len);
        let mut next = 0;
        loop {
            if params.bandwidth != 0
                && self.udp_sent * 8 * 1_000_000 >= params.bandwidth * elapsed_us
            {
                return;
            }
            let stream = &mut self.streams[next];
            let Some(peer) = stream.udp_peer else { return };
            let Ok(buffer) = socket.send(len, peer) else {
                return;
            };
            stream.packets += 1;
            let now = time::micros_since_entry();
            let header = UdpHeader {
                sec: (now / 1_000_000) as u32,
                usec: (now % 1_000_000) as u32,
                count: stream.packets,
            };
            header.write(buffer, params.udp_counters_64bit);
            stream.bytes += len as u64;
            self.udp_sent += len as u64;
            next = (next + 1) % self.stream_count.max(1);
        }
    }

    fn results(&self) -> ServerResults {
        let elapsed_us = self.end_us.saturating_sub(self.start_us).max(1);
        let elapsed_ticks = time::micros_to_ticks(elapsed_us).max(1);
        let idle = self
            .idle_at_end
            .saturating_sub(self.idle_at_start)
            .min(elapsed_ticks);
        let mut results = ServerResults {
            cpu_util_total: 100.0 * (1.0 - idle as f64 / elapsed_ticks as f64),
            stream_count: self.stream_count,
            ..ServerResults::default()
        };
        for (i, stream) in self.streams.iter().take(self.stream_count).enumerate() {
            results.streams[i] = StreamResult {
                id: proto::stream_id(i),
                bytes: stream.bytes,
                jitter_s: stream.udp.jitter_s,
                errors: stream.udp.errors,
                // iperf3's receiver reports the highest sequence number seen as its
                // packet count (loss = gaps); the sender reports datagrams sent.
                packets: match (stream.udp_peer.is_some(), self.params.map(|p| p.reverse)) {
                    (true, Some(false)) => stream.udp.packet_count,
                    (true, _) => stream.packets,
                    (false, _) => 0,
                },
                end_time_s: elapsed_us as f64 / 1e6,
            };
        }
        results
    }

    fn send_results(&mut self, sockets: &mut SocketSet<'static>) {
        let results = self.results();
        let mut json = Buffer {
            bytes: &mut self.message[4..],
            len: 0,
        };
        if proto::write_results(&mut json, &results).is_err() {
            self.abort(sockets, "results do not fit the control buffer");
            return;
        }
        let len = json.len;
        self.message[..4].copy_from_slice(&(len as u32).to_be_bytes());
        let control = sockets.get_mut::<tcp::Socket>(self.control);
        let _ = control.send_slice(&self.message[..4 + len]);
        self.message_len = 0;
    }

    fn report_end(&self) {
        let results = self.results();
        let (mut bytes, mut packets, mut errors, mut jitter) = (0, 0, 0, 0.0f64);
        for s in results.streams.iter().take(results.stream_count) {
            bytes += s.bytes;
            packets += s.packets;
            errors += s.errors;
            jitter = jitter.max(s.jitter_s);
        }
        let seconds = self.end_us.saturating_sub(self.start_us) as f64 / 1e6;
        let bits_per_second = if seconds > 0.0 {
            (bytes as f64 * 8.0 / seconds) as u64
        } else {
            0
        };
        Event::new("iperf3")
            .str("state", "end")
            .u64("test", self.tests)
            .u64("bytes", bytes)
            .u64("packets", packets)
            .u64("lost", errors)
            .fmt("jitter_ms", format_args!("{:.3}", jitter * 1e3))
            .fmt("seconds", format_args!("{seconds:.3}"))
            .u64("bits_per_second", bits_per_second)
            .fmt("cpu_percent", format_args!("{:.1}", results.cpu_util_total))
            .emit();
    }
}

/// A `fmt::Write` into a byte slice.
struct Buffer<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

impl Write for Buffer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(core::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
