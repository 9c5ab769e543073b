//! Reads `timeline.jsonl` tolerantly: a torn or garbled line costs that line, never the rest.

use std::path::Path;

use super::types::{Record, RunHeader, TIMELINE_SCHEMA};
use super::RecordError;

/// Skipped lines are described one by one up to this many; the rest are counted.
const MAX_WARNINGS: usize = 100;

/// A timeline as read from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The header (first line).
    pub header: RunHeader,
    /// Every record after the header that parsed, in file order.
    pub records: Vec<Record>,
    /// What was skipped and why (a torn last line after a crash, garbage, a second header).
    pub warnings: Vec<String>,
}

/// Reads timelines.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimelineReader;

impl TimelineReader {
    /// Read and parse `path`. Fails only when the file cannot be read or has no valid header
    /// of a supported schema; every other bad line becomes a warning (also logged).
    pub fn read(path: &Path) -> Result<Timeline, RecordError> {
        let bytes = std::fs::read(path).map_err(|source| RecordError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let timeline = Self::parse(&text).map_err(|e| match e {
            RecordError::NoHeader { .. } => RecordError::NoHeader {
                path: path.to_path_buf(),
            },
            other => other,
        })?;
        for w in &timeline.warnings {
            tracing::warn!("{}: {w}", path.display());
        }
        Ok(timeline)
    }

    /// Parse the text of a timeline (see [`TimelineReader::read`]).
    pub fn parse(text: &str) -> Result<Timeline, RecordError> {
        let mut header = None;
        let mut records = Vec::new();
        let mut warnings = Vec::new();
        let ends_with_newline = text.ends_with('\n');
        let lines: Vec<&str> = text.split('\n').collect();
        let last_index = lines.len().saturating_sub(1);
        for (index, line) in lines.iter().enumerate() {
            let line_no = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let torn = index == last_index && !ends_with_newline;
            let parsed: Result<Record, _> = serde_json::from_str(line);
            match (parsed, &header) {
                (Ok(Record::Header(h)), None) => {
                    if h.schema != TIMELINE_SCHEMA {
                        return Err(RecordError::UnsupportedSchema { found: h.schema });
                    }
                    header = Some(h);
                }
                (Ok(Record::Header(_)), Some(_)) => {
                    warnings.push(format!("line {line_no}: a second header, skipped"));
                }
                (Ok(_), None) => {
                    warnings.push(format!(
                        "line {line_no}: a record before the header, skipped"
                    ));
                }
                (Ok(record), Some(_)) => records.push(record),
                (Err(e), _) if torn => warnings.push(format!(
                    "line {line_no}: the last line is incomplete (torn by a crash?), skipped: {e}"
                )),
                (Err(e), _) => {
                    warnings.push(format!("line {line_no}: not a valid record, skipped: {e}"))
                }
            }
        }
        if warnings.len() > MAX_WARNINGS {
            let more = warnings.len() - MAX_WARNINGS;
            warnings.truncate(MAX_WARNINGS);
            warnings.push(format!("… and {more} more skipped lines"));
        }
        let header = header.ok_or(RecordError::NoHeader {
            path: Default::default(),
        })?;
        Ok(Timeline {
            header,
            records,
            warnings,
        })
    }
}
