//! The iperf3 wire protocol, server side, without I/O: control-channel states, the
//! client's parameter JSON, the server's result JSON, and UDP receive statistics.
//!
//! The control connection carries a 37-byte cookie, then one-byte state changes
//! (server to client) and length-prefixed JSON (4-byte big-endian length) both ways.

use core::fmt::Write;

/// Length of the cookie the client sends on every connection (36 characters + NUL).
pub const COOKIE_LEN: usize = 37;

/// Control-channel states (iperf_api.h), as signed bytes.
pub mod state {
    /// Server: streams are connected, test starts.
    pub const TEST_START: u8 = 1;
    /// Server: test running.
    pub const TEST_RUNNING: u8 = 2;
    /// Client: the test is over (time, bytes or blocks reached).
    pub const TEST_END: u8 = 4;
    /// Server: send your parameters.
    pub const PARAM_EXCHANGE: u8 = 9;
    /// Server: connect the data streams.
    pub const CREATE_STREAMS: u8 = 10;
    /// Server: aborting.
    pub const SERVER_TERMINATE: u8 = 11;
    /// Client: aborting.
    pub const CLIENT_TERMINATE: u8 = 12;
    /// Server: exchange results now.
    pub const EXCHANGE_RESULTS: u8 = 13;
    /// Server: the client may print its results.
    pub const DISPLAY_RESULTS: u8 = 14;
    /// Client: finished.
    pub const IPERF_DONE: u8 = 16;
    /// Server: busy or refused (-1).
    pub const ACCESS_DENIED: u8 = 0xff;
}

/// UDP "connect" datagram from the client, and the server's reply, as the 4 bytes on the
/// wire (iperf3 writes the host-order integers 0x36373839 and 0x39383736 on x86).
pub const UDP_CONNECT_MSG: [u8; 4] = *b"9876";
/// See [`UDP_CONNECT_MSG`].
pub const UDP_CONNECT_REPLY: [u8; 4] = *b"6789";
/// Before iperf 3.11 the messages were the integers 123456789 and 987654321.
pub const LEGACY_UDP_CONNECT_MSG: [u8; 4] = 123_456_789u32.to_le_bytes();
/// See [`LEGACY_UDP_CONNECT_MSG`].
pub const LEGACY_UDP_CONNECT_REPLY: [u8; 4] = 987_654_321u32.to_le_bytes();

/// The reply to a UDP connect datagram, or None if it is not one.
pub fn udp_connect_reply(datagram: &[u8]) -> Option<[u8; 4]> {
    match datagram {
        d if d == UDP_CONNECT_MSG => Some(UDP_CONNECT_REPLY),
        d if d == LEGACY_UDP_CONNECT_MSG => Some(LEGACY_UDP_CONNECT_REPLY),
        _ => None,
    }
}

/// Stream ids as iperf3 numbers them: 1, then 3, 4, 5, ...
pub fn stream_id(index: usize) -> u32 {
    if index == 0 {
        1
    } else {
        index as u32 + 2
    }
}

/// Transport of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP streams.
    Tcp,
    /// UDP streams.
    Udp,
}

/// What the client asked for (the parts the server uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestParams {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// `-t` seconds (the client ends the test; used as a watchdog here).
    pub time_s: u64,
    /// `-n` bytes (0 = not set).
    pub bytes: u64,
    /// `-k` blocks (0 = not set).
    pub blocks: u64,
    /// `-P` streams.
    pub parallel: usize,
    /// `-R`: the server sends.
    pub reverse: bool,
    /// `--bidir`.
    pub bidirectional: bool,
    /// `-l` block / datagram length.
    pub len: usize,
    /// `-b` bits per second (0 = unlimited).
    pub bandwidth: u64,
    /// `--udp-counters-64bit`.
    pub udp_counters_64bit: bool,
    /// `-O` seconds omitted at the start.
    pub omit_s: u64,
}

/// Why the parameters were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamError {
    /// Not a JSON object.
    Malformed,
    /// Neither "tcp" nor "udp" was set.
    NoProtocol,
    /// A feature this server does not implement.
    Unsupported(&'static str),
}

impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParamError::Malformed => write!(f, "the parameters are not a JSON object"),
            ParamError::NoProtocol => write!(f, "the parameters name no protocol (tcp/udp)"),
            ParamError::Unsupported(what) => write!(f, "unsupported: {what}"),
        }
    }
}

/// Most streams per test.
pub const MAX_STREAMS: usize = 4;
/// Longest block/datagram this server accepts.
pub const MAX_LEN: usize = 1 << 20;

/// Parse the client's parameter JSON.
pub fn parse_params(json: &[u8]) -> Result<TestParams, ParamError> {
    let text = core::str::from_utf8(json).map_err(|_| ParamError::Malformed)?;
    let mut params = TestParams {
        protocol: Protocol::Tcp,
        time_s: 10,
        bytes: 0,
        blocks: 0,
        parallel: 1,
        reverse: false,
        bidirectional: false,
        len: 0,
        bandwidth: 0,
        udp_counters_64bit: false,
        omit_s: 0,
    };
    let mut protocol = None;
    for_each_member(text, |key, value| match key {
        "tcp" if value.truthy() => protocol = Some(Protocol::Tcp),
        "udp" if value.truthy() => protocol = Some(Protocol::Udp),
        "sctp" if value.truthy() => protocol = None,
        "time" => params.time_s = value.uint(),
        "num" => params.bytes = value.uint(),
        "blockcount" => params.blocks = value.uint(),
        "parallel" => params.parallel = value.uint() as usize,
        "reverse" => params.reverse = value.truthy(),
        "bidirectional" => params.bidirectional = value.truthy(),
        "len" => params.len = value.uint() as usize,
        "bandwidth" => params.bandwidth = value.uint(),
        "udp_counters_64bit" => params.udp_counters_64bit = value.truthy(),
        "omit" => params.omit_s = value.uint(),
        _ => {}
    })
    .ok_or(ParamError::Malformed)?;
    params.protocol = protocol.ok_or(ParamError::NoProtocol)?;
    if params.bidirectional {
        return Err(ParamError::Unsupported("--bidir"));
    }
    if params.parallel == 0 || params.parallel > MAX_STREAMS {
        return Err(ParamError::Unsupported("-P other than 1 to 4"));
    }
    if params.len == 0 || params.len > MAX_LEN {
        return Err(ParamError::Unsupported("-l of 0 or above 1 MiB"));
    }
    if params.reverse && (params.bytes != 0 || params.blocks != 0) {
        return Err(ParamError::Unsupported("-R with -n or -k"));
    }
    Ok(params)
}

/// A JSON value as far as the parameter scanner cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A number.
    Number(f64),
    /// true / false.
    Bool(bool),
    /// A string (raw, escapes not decoded).
    Str(&'a str),
    /// null, an object or an array.
    Other,
}

impl Value<'_> {
    fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0,
            _ => false,
        }
    }

    fn uint(&self) -> u64 {
        match self {
            Value::Number(n) if *n >= 0.0 => *n as u64,
            _ => 0,
        }
    }
}

/// Call `f` for each member of the top-level JSON object in `text`; None if `text` is
/// not a well-formed object (nested values are skipped, not validated in depth).
pub fn for_each_member<'a>(text: &'a str, mut f: impl FnMut(&'a str, Value<'a>)) -> Option<()> {
    let bytes = text.as_bytes();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return Some(());
    }
    loop {
        let (key, next) = scan_string(text, i)?;
        i = skip_ws(bytes, next);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        let (value, next) = scan_value(text, i)?;
        f(key, value);
        i = skip_ws(bytes, next);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => return Some(()),
            _ => return None,
        }
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string starting at `i` (the opening quote); returns its raw contents and the index
/// after the closing quote.
fn scan_string(text: &str, i: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match bytes.get(j)? {
            b'"' => return Some((text.get(i + 1..j)?, j + 1)),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

fn scan_value(text: &str, i: usize) -> Option<(Value<'_>, usize)> {
    let bytes = text.as_bytes();
    match bytes.get(i)? {
        b'"' => scan_string(text, i).map(|(s, next)| (Value::Str(s), next)),
        b't' if text.get(i..i + 4) == Some("true") => Some((Value::Bool(true), i + 4)),
        b'f' if text.get(i..i + 5) == Some("false") => Some((Value::Bool(false), i + 5)),
        b'n' if text.get(i..i + 4) == Some("null") => Some((Value::Other, i + 4)),
        b'{' | b'[' => skip_nested(text, i).map(|next| (Value::Other, next)),
        b'-' | b'0'..=b'9' => {
            let mut j = i + 1;
            while matches!(
                bytes.get(j),
                Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            ) {
                j += 1;
            }
            let number = text.get(i..j)?.parse::<f64>().ok()?;
            Some((Value::Number(number), j))
        }
        _ => None,
    }
}

/// Skip an object or array starting at `i`; returns the index after it.
fn skip_nested(text: &str, i: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut j = i;
    loop {
        match bytes.get(j)? {
            b'"' => {
                j = scan_string(text, j)?.1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
}

/// One stream's result, as the server reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamResult {
    /// iperf3 stream id.
    pub id: u32,
    /// Bytes received (or sent, in reverse mode).
    pub bytes: u64,
    /// UDP: jitter in seconds (receiver).
    pub jitter_s: f64,
    /// UDP: datagrams lost (receiver).
    pub errors: u64,
    /// UDP: datagrams received (or sent).
    pub packets: u64,
    /// Seconds from test start to end.
    pub end_time_s: f64,
}

/// The server's results message.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerResults {
    /// Busy share of the probe's CPU, percent.
    pub cpu_util_total: f64,
    /// The streams.
    pub streams: [StreamResult; MAX_STREAMS],
    /// How many of `streams` are used.
    pub stream_count: usize,
}

/// Write the results JSON iperf3's client expects (get_results: cpu_util_*,
/// sender_has_retransmits, streams[] with id, bytes, retransmits, jitter, errors, packets,
/// start_time, end_time). smoltcp does not expose retransmits: reported as -1 / 0.
pub fn write_results(out: &mut impl Write, results: &ServerResults) -> core::fmt::Result {
    write!(
        out,
        "{{\"cpu_util_total\":{:.6},\"cpu_util_user\":{:.6},\"cpu_util_system\":0,\"sender_has_retransmits\":0,\"streams\":[",
        results.cpu_util_total, results.cpu_util_total
    )?;
    for (i, s) in results
        .streams
        .iter()
        .take(results.stream_count)
        .enumerate()
    {
        if i > 0 {
            out.write_char(',')?;
        }
        write!(
            out,
            "{{\"id\":{},\"bytes\":{},\"retransmits\":-1,\"jitter\":{:.9},\"errors\":{},\"omitted_errors\":0,\"packets\":{},\"omitted_packets\":0,\"start_time\":0,\"end_time\":{:.6}}}",
            s.id, s.bytes, s.jitter_s, s.errors, s.packets, s.end_time_s
        )?;
    }
    out.write_str("]}")
}

/// UDP datagram header: sender's time (seconds, microseconds) and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpHeader {
    /// Sender's clock, seconds.
    pub sec: u32,
    /// Sender's clock, microseconds.
    pub usec: u32,
    /// Sequence number, from 1.
    pub count: u64,
}

impl UdpHeader {
    /// Header length for the counter width.
    pub fn len(counters_64bit: bool) -> usize {
        if counters_64bit {
            16
        } else {
            12
        }
    }

    /// Parse the start of a datagram.
    pub fn parse(datagram: &[u8], counters_64bit: bool) -> Option<UdpHeader> {
        let be32 = |at: usize| {
            Some(u32::from_be_bytes(
                datagram.get(at..at + 4)?.try_into().ok()?,
            ))
        };
        let count = if counters_64bit {
            u64::from_be_bytes(datagram.get(8..16)?.try_into().ok()?)
        } else {
            u64::from(be32(8)?)
        };
        Some(UdpHeader {
            sec: be32(0)?,
            usec: be32(4)?,
            count,
        })
    }

    /// Write into the start of `datagram` (which must hold `len(counters_64bit)` bytes).
    pub fn write(&self, datagram: &mut [u8], counters_64bit: bool) {
        datagram[0..4].copy_from_slice(&self.sec.to_be_bytes());
        datagram[4..8].copy_from_slice(&self.usec.to_be_bytes());
        if counters_64bit {
            datagram[8..16].copy_from_slice(&self.count.to_be_bytes());
        } else {
            datagram[8..12].copy_from_slice(&(self.count as u32).to_be_bytes());
        }
    }
}

/// Receiver statistics of one UDP stream, computed as iperf3 does (iperf_udp_recv):
/// loss from sequence gaps, out-of-order arrivals, RFC 1889 jitter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UdpReceiver {
    /// Highest sequence number seen.
    pub packet_count: u64,
    /// Datagrams counted lost.
    pub errors: u64,
    /// Datagrams that arrived out of order.
    pub out_of_order: u64,
    /// Smoothed jitter, seconds.
    pub jitter_s: f64,
    previous_transit: Option<f64>,
}

impl UdpReceiver {
    /// Account for a datagram sent at `header` time, arriving at `arrival_s` (our clock).
    pub fn record(&mut self, header: &UdpHeader, arrival_s: f64) {
        if header.count > self.packet_count {
            self.errors += header.count - self.packet_count - 1;
            self.packet_count = header.count;
        } else {
            self.out_of_order += 1;
            // A late datagram was counted lost when the gap was seen.
            self.errors = self.errors.saturating_sub(1);
        }
        let sent_s = f64::from(header.sec) + f64::from(header.usec) / 1e6;
        let transit = arrival_s - sent_s;
        if let Some(previous) = self.previous_transit {
            let d = (transit - previous).abs();
            self.jitter_s += (d - self.jitter_s) / 16.0;
        }
        self.previous_transit = Some(transit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_PARAMS: &str = r#"{"tcp":true,"omit":0,"time":10,"num":0,"blockcount":0,"parallel":1,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#;

    #[test]
    fn parses_tcp_and_udp_params_from_iperf_3_12() {
        let p = parse_params(CLIENT_PARAMS.as_bytes()).unwrap();
        assert_eq!(p.protocol, Protocol::Tcp);
        assert_eq!(
            (p.time_s, p.parallel, p.len, p.reverse),
            (10, 1, 131072, false)
        );
        let udp = r#"{"udp":true,"omit":0,"time":5,"num":0,"blockcount":0,"parallel":2,"reverse":true,"len":1400,"bandwidth":200000000,"pacing_timer":1000,"udp_counters_64bit":1,"title":"x \"y\"","extra":{"a":[1,{"b":"}"}]},"client_version":"3.12"}"#;
        let p = parse_params(udp.as_bytes()).unwrap();
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(
            (p.time_s, p.parallel, p.len, p.bandwidth),
            (5, 2, 1400, 200_000_000)
        );
        assert!(p.reverse && p.udp_counters_64bit);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        assert_eq!(parse_params(b"[1]"), Err(ParamError::Malformed));
        assert_eq!(
            parse_params(b"{\"tcp\":true,\"len\":"),
            Err(ParamError::Malformed)
        );
        assert_eq!(parse_params(b"{\"len\":10}"), Err(ParamError::NoProtocol));
        assert!(matches!(
            parse_params(b"{\"tcp\":true,\"len\":10,\"bidirectional\":true}"),
            Err(ParamError::Unsupported(_))
        ));
        assert!(matches!(
            parse_params(b"{\"tcp\":true,\"len\":10,\"parallel\":9}"),
            Err(ParamError::Unsupported(_))
        ));
    }

    #[test]
    fn results_json_has_what_the_client_requires() {
        let mut results = ServerResults {
            cpu_util_total: 12.5,
            stream_count: 1,
            ..Default::default()
        };
        results.streams[0] = StreamResult {
            id: 1,
            bytes: 1000,
            jitter_s: 0.001,
            errors: 2,
            packets: 7,
            end_time_s: 10.0,
        };
        let mut out = String::new();
        write_results(&mut out, &results).unwrap();
        let mut keys = Vec::new();
        for_each_member(&out, |k, _| keys.push(k.to_string())).unwrap();
        assert_eq!(
            keys,
            [
                "cpu_util_total",
                "cpu_util_user",
                "cpu_util_system",
                "sender_has_retransmits",
                "streams"
            ]
        );
        for key in [
            "\"id\":1",
            "\"bytes\":1000",
            "\"retransmits\":-1",
            "\"jitter\":0.001000000",
            "\"errors\":2",
            "\"packets\":7",
            "\"end_time\":10.000000",
        ] {
            assert!(out.contains(key), "{key} in {out}");
        }
    }

    #[test]
    fn udp_connect_and_ids() {
        assert_eq!(
            udp_connect_reply(&0x3637_3839u32.to_le_bytes()),
            Some(0x3938_3736u32.to_le_bytes())
        );
        assert_eq!(
            udp_connect_reply(&123_456_789u32.to_le_bytes()),
            Some(987_654_321u32.to_le_bytes())
        );
        assert_eq!(udp_connect_reply(b"abcd"), None);
        assert_eq!([stream_id(0), stream_id(1), stream_id(2)], [1, 3, 4]);
    }

    #[test]
    fn udp_loss_reordering_and_jitter() {
        let mut r = UdpReceiver::default();
        let at = |count, sec: f64| {
            (
                UdpHeader {
                    sec: sec as u32,
                    usec: ((sec.fract()) * 1e6) as u32,
                    count,
                },
                sec,
            )
        };
        for (h, t) in [at(1, 1.0), at(2, 1.1), at(5, 1.2)] {
            r.record(&h, t + 0.5);
        }
        assert_eq!((r.packet_count, r.errors), (5, 2));
        let (h, t) = at(4, 1.15);
        r.record(&h, t + 0.5);
        assert_eq!((r.errors, r.out_of_order), (1, 1));
        assert!(
            r.jitter_s < 1e-6,
            "constant transit time: no jitter ({})",
            r.jitter_s
        );
        let (h, t) = at(6, 1.3);
        r.record(&h, t + 0.516);
        assert!((r.jitter_s - 0.001).abs() < 1e-6, "{}", r.jitter_s);
        let mut buf = [0u8; 16];
        let header = UdpHeader {
            sec: 7,
            usec: 8,
            count: 9,
        };
        header.write(&mut buf, true);
        assert_eq!(UdpHeader::parse(&buf, true), Some(header));
        header.write(&mut buf, false);
        assert_eq!(UdpHeader::parse(&buf, false), Some(header));
    }
}
