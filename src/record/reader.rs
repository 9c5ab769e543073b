//! Reads `timeline.jsonl` tolerantly: a torn or garbled line costs that line, never the rest.

use std::io::{BufRead, BufReader};
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

/// A timeline read as a stream: everything but its records, which went to a callback.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineSummary {
    /// The header (first line).
    pub header: RunHeader,
    /// How many records after the header parsed.
    pub records: usize,
    /// What was skipped and why.
    pub warnings: Vec<String>,
}

impl Timeline {
    /// The timeline without its records.
    pub fn summary(&self) -> TimelineSummary {
        TimelineSummary {
            header: self.header.clone(),
            records: self.records.len(),
            warnings: self.warnings.clone(),
        }
    }
}

/// Reads timelines.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimelineReader;

impl TimelineReader {
    /// Read and parse `path`, one line at a time (a 48-hour record is about 170 MB). Fails
    /// only when the file cannot be read or has no valid header of a supported schema; every
    /// other bad line becomes a warning (also logged).
    pub fn read(path: &Path) -> Result<Timeline, RecordError> {
        let mut records = Vec::new();
        let summary = Self::stream(path, |r| records.push(r))?;
        Ok(Timeline {
            header: summary.header,
            records,
            warnings: summary.warnings,
        })
    }

    /// Read `path` as [`TimelineReader::read`] does, but hand each record to `sink` as it is
    /// parsed instead of keeping them: memory stays flat however long the record is.
    pub fn stream(
        path: &Path,
        mut sink: impl FnMut(Record),
    ) -> Result<TimelineSummary, RecordError> {
        let read_error = |source| RecordError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut reader = BufReader::new(file);
        let mut lines = LineParser::default();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(read_error)? == 0 {
                break;
            }
            // Only the last line of a file can lack its newline: a writer that died mid-line.
            let torn = !buf.ends_with(b"\n");
            lines.line(&String::from_utf8_lossy(&buf), torn, &mut sink)?;
        }
        let timeline = lines.finish().map_err(|e| match e {
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
        let mut lines = LineParser::default();
        let mut records = Vec::new();
        let mut sink = |r| records.push(r);
        let mut rest = text;
        while !rest.is_empty() {
            let (line, torn) = match rest.find('\n') {
                Some(end) => (&rest[..=end], false),
                None => (rest, true),
            };
            lines.line(line, torn, &mut sink)?;
            rest = &rest[line.len()..];
        }
        let summary = lines.finish()?;
        Ok(Timeline {
            header: summary.header,
            records,
            warnings: summary.warnings,
        })
    }
}

/// The state of reading a timeline line by line.
#[derive(Debug, Default)]
struct LineParser {
    line_no: usize,
    header: Option<RunHeader>,
    records: usize,
    warnings: Vec<String>,
    skipped: usize,
}

impl LineParser {
    /// Take one line (with or without its newline); `torn` when it has none.
    fn line(
        &mut self,
        line: &str,
        torn: bool,
        sink: &mut impl FnMut(Record),
    ) -> Result<(), RecordError> {
        self.line_no += 1;
        let line_no = self.line_no;
        if line.trim().is_empty() {
            return Ok(());
        }
        let parsed: Result<Record, _> = serde_json::from_str(line);
        let warning = match (parsed, &self.header) {
            (Ok(Record::Header(h)), None) => {
                if h.schema != TIMELINE_SCHEMA {
                    return Err(RecordError::UnsupportedSchema { found: h.schema });
                }
                self.header = Some(h);
                return Ok(());
            }
            (Ok(record), Some(_)) if !matches!(record, Record::Header(_)) => {
                self.records += 1;
                sink(record);
                return Ok(());
            }
            (Ok(Record::Header(_)), Some(_)) => format!("line {line_no}: a second header, skipped"),
            (Ok(_), _) => format!("line {line_no}: a record before the header, skipped"),
            (Err(e), _) if torn => format!(
                "line {line_no}: the last line is incomplete (torn by a crash?), skipped: {e}"
            ),
            (Err(e), _) => format!("line {line_no}: not a valid record, skipped: {e}"),
        };
        self.skipped += 1;
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(warning);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<TimelineSummary, RecordError> {
        if self.skipped > self.warnings.len() {
            let more = self.skipped - self.warnings.len();
            self.warnings
                .push(format!("… and {more} more skipped lines"));
        }
        let header = self.header.ok_or(RecordError::NoHeader {
            path: Default::default(),
        })?;
        Ok(TimelineSummary {
            header,
            records: self.records,
            warnings: self.warnings,
        })
    }
}
