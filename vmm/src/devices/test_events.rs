//! Tests' view of the event stream: an [`EventSink`] whose JSON lines are kept in memory.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::events::EventSink;

/// The events a sink made by [`Events::sink`] emitted.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<u8>>>);

impl Write for Events {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Events {
    /// A sink writing here.
    pub fn sink(&self) -> EventSink {
        EventSink::to_writer(Box::new(self.clone()))
    }

    /// The events named `kind`, parsed.
    pub fn of(&self, kind: &str) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == kind)
            .collect()
    }
}
