//! Where events go: a file (or any writer), one JSON line per event, flushed as written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::types::{Event, Stamped};

/// A cloneable handle that appends events; a sink made with [`EventSink::none`] drops them.
#[derive(Clone)]
pub struct EventSink {
    out: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    start: Instant,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("enabled", &self.out.is_some())
            .finish()
    }
}

impl EventSink {
    /// A sink that discards every event.
    pub fn none() -> Self {
        Self {
            out: None,
            start: Instant::now(),
        }
    }

    /// A sink that creates (truncates) `path` and writes one JSON line per event.
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self::to_writer(Box::new(BufWriter::new(file))))
    }

    /// A sink over any writer (tests use an in-memory buffer).
    pub fn to_writer(w: Box<dyn Write + Send>) -> Self {
        Self {
            out: Some(Arc::new(Mutex::new(w))),
            start: Instant::now(),
        }
    }

    /// Whether events are being recorded at all (lets callers skip building costly payloads).
    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Milliseconds since this sink (the VMM) started.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Emit `event`, stamped with the time. Write errors are logged, never fatal: losing the
    /// event stream must not kill the guest.
    pub fn emit(&self, event: Event) {
        let Some(out) = &self.out else { return };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let stamped = Stamped {
            ts,
            t_ms: self.elapsed_ms(),
            event,
        };
        let mut line = match serde_json::to_string(&stamped) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("cannot serialize a {} event: {e}", stamped.event.name());
                return;
            }
        };
        line.push('\n');
        let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.write_all(line.as_bytes()).and_then(|_| w.flush()) {
            tracing::warn!("event stream write failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_json_line_with_common_fields() {
        let buf = Shared::default();
        let sink = EventSink::to_writer(Box::new(buf.clone()));
        sink.emit(Event::Start(crate::events::Start {
            pid: 1,
            vcpus: 1,
            mem_mib: 64,
            kernel_format: "Elf".into(),
            entry: 0x10_0000,
            cmdline: String::new(),
        }));
        sink.emit(Event::Exit(crate::events::Exit {
            status: 0,
            reason: "reset".into(),
            message: "the guest reset".into(),
            vmm_rss_kib: None,
        }));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "start");
        assert_eq!(lines[0]["vcpus"], 1);
        assert!(lines[1]["ts"].as_f64().unwrap() > 1.0e9);
        assert!(lines[1]["t_ms"].is_u64());
    }

    #[test]
    fn a_disabled_sink_is_silent() {
        let sink = EventSink::none();
        assert!(!sink.enabled());
        sink.emit(Event::Exit(crate::events::Exit {
            status: 0,
            reason: "reset".into(),
            message: String::new(),
            vmm_rss_kib: None,
        }));
    }
}
