//! The crash-safe run record, `timeline.jsonl`: its types, a durable writer and a tolerant
//! reader.
//!
//! The orchestrator (`soak`, `reproduce`, `verify`) creates a [`TimelineWriter`] with a
//! [`RunHeader`], appends one [`Sample`] per second and discrete records ([`Stall`],
//! [`DhcpExchange`], [`VmmExit`], [`Note`]) as they happen, and a [`RunEnd`] last. Each append
//! is on disk when it returns, so `vnetbed report DIR` can rebuild every report after the
//! orchestrator was killed. docs/reports.md documents the format.

mod host;
mod reader;
mod types;
mod writer;

use std::path::PathBuf;

pub use host::{rfc3339_utc, unix_now};
pub use reader::{Timeline, TimelineReader, TimelineSummary};
pub use types::*;
pub use writer::TimelineWriter;

/// The file name of the record inside a run directory.
pub const TIMELINE_FILE: &str = "timeline.jsonl";

/// Errors of writing or reading a timeline.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Cannot create the timeline (it must not exist yet; choose a new run directory).
    #[error("cannot create {path} (it must not exist yet; use a new run directory): {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Cannot append to the timeline (disk full? file system gone read-only?).
    #[error("cannot write {path} (disk full or read-only?): {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Cannot read the timeline.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be turned into JSON (a non-finite number?).
    #[error("cannot serialize a timeline record: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The file has no valid header line, so it is not a vnetbed timeline (or the run died
    /// before writing anything).
    #[error("{path} has no valid header line: not a vnetbed timeline, or the run died before it started")]
    NoHeader {
        /// The file.
        path: PathBuf,
    },
    /// The header names a schema this vnetbed cannot read.
    #[error("unsupported timeline schema {found:?} (this vnetbed reads {TIMELINE_SCHEMA:?}); use the vnetbed version that wrote it")]
    UnsupportedSchema {
        /// The schema in the header.
        found: String,
    },
}

impl RunHeader {
    /// A header for a run starting now on this host, with this process's command line.
    pub fn new(config: RunConfig) -> Self {
        // Milliseconds are plenty, and keep the JSON short.
        let started_unix = (unix_now() * 1000.0).round() / 1000.0;
        Self {
            schema: TIMELINE_SCHEMA.to_string(),
            vnetbed_version: env!("CARGO_PKG_VERSION").to_string(),
            command: std::env::args().collect(),
            started_unix,
            started_at: rfc3339_utc(started_unix),
            config,
            host: HostInfo::detect(),
            identity: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        RunConfig {
            guest: "probe".into(),
            notify_model: "fenced".into(),
            queue_backend: None,
            race_window: None,
            load: "udp".into(),
            rate: Some("200M".into()),
            duration_s: Some(60.0),
            throughput_floor_bps: Some(1e6),
            ..Default::default()
        }
    }

    fn sample(elapsed: f64) -> Sample {
        Sample {
            t: 1000.0 + elapsed,
            elapsed,
            throughput: Some(Throughput {
                to_guest_bps: Some(1e8),
                from_guest_bps: None,
                iperf_run: Some(1),
            }),
            ping: Some(Ping {
                rtt_ms: Some(0.3),
                lost: false,
            }),
            lease: Some(LeaseState::Bound),
            ..Sample::default()
        }
    }

    #[test]
    fn written_records_read_back_identically() {
        let dir = std::env::temp_dir().join(format!("vnetbed-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(TIMELINE_FILE);
        let header = RunHeader::new(config());
        let mut w = TimelineWriter::create(&path, &header).unwrap();
        w.sample(&sample(1.0)).unwrap();
        w.append(&Record::Note(Note {
            at: 1.5,
            text: "dnsmasq restarted".into(),
        }))
        .unwrap();
        w.sample(&sample(2.0)).unwrap();
        drop(w);
        assert!(
            TimelineWriter::create(&path, &header).is_err(),
            "must not overwrite a record"
        );
        let t = TimelineReader::read(&path).unwrap();
        // serde_json's default float parser may be one ULP off; compare the rest exactly.
        assert!((t.header.started_unix - header.started_unix).abs() < 1e-6);
        assert_eq!(
            RunHeader {
                started_unix: header.started_unix,
                ..t.header.clone()
            },
            header
        );
        assert_eq!(t.records.len(), 3);
        assert_eq!(t.records[0], Record::Sample(sample(1.0)));
        assert!(t.warnings.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_skipped_with_a_warning() {
        let header = serde_json::to_string(&Record::Header(RunHeader::new(config()))).unwrap();
        let s1 = serde_json::to_string(&Record::Sample(sample(1.0))).unwrap();
        let s2 = serde_json::to_string(&Record::Sample(sample(2.0))).unwrap();
        let text = format!("{header}\n{s1}\n{}", &s2[..s2.len() / 2]);
        let t = TimelineReader::parse(&text).unwrap();
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.warnings.len(), 1);
        assert!(t.warnings[0].contains("torn"), "{:?}", t.warnings);
    }

    #[test]
    fn garbage_in_the_middle_costs_only_that_line() {
        let header = serde_json::to_string(&Record::Header(RunHeader::new(config()))).unwrap();
        let s1 = serde_json::to_string(&Record::Sample(sample(1.0))).unwrap();
        let text = format!("{header}\n\u{0}\u{0}garbage\n{{\"record\":\"mystery\"}}\n{s1}\n");
        let t = TimelineReader::parse(&text).unwrap();
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.warnings.len(), 2);
    }

    #[test]
    fn many_bad_lines_are_summarised() {
        let header = serde_json::to_string(&Record::Header(RunHeader::new(config()))).unwrap();
        let text = format!("{header}\n{}", "garbage\n".repeat(1000));
        let t = TimelineReader::parse(&text).unwrap();
        assert_eq!(t.warnings.len(), 101);
        assert_eq!(t.warnings[100], "… and 900 more skipped lines");
    }

    #[test]
    fn no_header_or_a_foreign_schema_is_an_error() {
        let s1 = serde_json::to_string(&Record::Sample(sample(1.0))).unwrap();
        assert!(matches!(
            TimelineReader::parse(&s1),
            Err(RecordError::NoHeader { .. })
        ));
        let mut h = RunHeader::new(config());
        h.schema = "vnetbed.timeline/99".into();
        let text = serde_json::to_string(&Record::Header(h)).unwrap();
        assert!(matches!(
            TimelineReader::parse(&text),
            Err(RecordError::UnsupportedSchema { .. })
        ));
    }

    #[test]
    fn every_record_kind_round_trips() {
        let stall = Stall {
            source: crate::record::StallSource::Device,
            guest_last_used_idx: None,
            host_evidence: None,
            queue: "rx".into(),
            kind: StallKind::LostKick,
            detected_at: 2.5,
            stalled_since: 1.25,
            device_next_avail: 7,
            device_next_used: 7,
            guest_avail_idx: 263,
            guest_used_event: Some(6),
            guest_avail_flags: 1,
            last_kick_at: Some(1.0),
            last_interrupt_at: None,
        };
        let exchange = DhcpExchange {
            at: 3.0,
            phase: DhcpPhase::Rebind,
            message: "request".into(),
            xid: Some("0badcafe".into()),
            mac: Some("52:54:00:00:00:01".into()),
            ip: Some("198.18.0.50".into()),
            reply: Some("ack".into()),
            received_by_guest: Some(false),
            replied_at: None,
            host_dropped: None,
        };
        let mut full = sample(4.0);
        full.dhcp.push(exchange.clone());
        full.stalls.push(stall.clone());
        full.device = Some(DeviceCounters {
            queues: vec![QueueCounters {
                queue: "rx".into(),
                notify_enables: 9,
                ..Default::default()
            }],
        });
        full.guest = Some(GuestCounters {
            rx_packets: 5,
            ..Default::default()
        });
        full.notes.push("note".into());
        let exit = VmmExit {
            at: 5.0,
            status: None,
            signal: Some(9),
            cause: "killed".into(),
            expected: false,
            last_events: vec![serde_json::json!({"event": "counters"})],
        };
        full.vmm_exit = Some(exit.clone());
        let records = [
            Record::Sample(full),
            Record::Stall(stall),
            Record::Dhcp(exchange),
            Record::VmmExit(exit),
            Record::Note(Note {
                at: 6.0,
                text: "x".into(),
            }),
            Record::End(RunEnd {
                t: 7.0,
                elapsed: 7.0,
                outcome: RunOutcome::Interrupted,
                detail: Some("SIGTERM".into()),
                logs: Vec::new(),
            }),
        ];
        for record in records {
            let line = serde_json::to_string(&record).unwrap();
            let back: Record =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(back, record);
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let header = serde_json::to_string(&Record::Header(RunHeader::new(config()))).unwrap();
        let text = format!(
            "{header}\n{{\"record\":\"sample\",\"t\":1.0,\"elapsed\":1.0,\"future\":[1,2]}}\n"
        );
        let t = TimelineReader::parse(&text).unwrap();
        assert_eq!(t.records.len(), 1);
        assert!(t.warnings.is_empty());
    }
}
