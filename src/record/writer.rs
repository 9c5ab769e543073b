//! Appends records to `timeline.jsonl`, each one on disk before `append` returns.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::types::{Record, RunHeader, Sample};
use super::RecordError;

/// Writes a timeline: the header on creation, then one line per record. Every record is
/// written with one `write`, then flushed and `fdatasync`ed, so that a crash of the writer
/// (or of the machine) loses at most the line being written. At 1 Hz the sync costs nothing
/// that matters.
#[derive(Debug)]
pub struct TimelineWriter {
    file: File,
    path: PathBuf,
}

impl TimelineWriter {
    /// Create `path` (refusing to overwrite an existing record) and write `header` as its
    /// first line.
    pub fn create(path: &Path, header: &RunHeader) -> Result<Self, RecordError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| RecordError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        let mut writer = Self {
            file,
            path: path.to_path_buf(),
        };
        writer.append(&Record::Header(header.clone()))?;
        Ok(writer)
    }

    /// Append one record and make it durable.
    pub fn append(&mut self, record: &Record) -> Result<(), RecordError> {
        let mut line = serde_json::to_string(record).map_err(RecordError::Serialize)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| RecordError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Append a once-per-second sample.
    pub fn sample(&mut self, sample: &Sample) -> Result<(), RecordError> {
        self.append(&Record::Sample(sample.clone()))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
