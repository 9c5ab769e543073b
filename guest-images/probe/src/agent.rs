//! The agent protocol: one line `@probe {json}` per event on COM1 (see README.md).
//!
//! Lines are built in a fixed buffer (no allocator) and written in one go, so that an
//! event is never interleaved with other output.

use core::fmt::Write;

use crate::serial;
use crate::time;

/// Longest line; longer events are cut and marked `"truncated":true`.
const LINE_CAPACITY: usize = 1024;
/// Room kept free for the closing `,"truncated":true}` and the line end.
const TAIL_RESERVE: usize = 24;

/// An event under construction. Call the field methods, then [`Event::emit`].
pub struct Event {
    buf: [u8; LINE_CAPACITY],
    len: usize,
    truncated: bool,
}

impl Event {
    /// Start the line: `@probe {"t_us":<micros since entry>,"event":"<name>"`.
    pub fn new(name: &str) -> Self {
        Self::at(name, time::rdtsc())
    }

    /// Start a line for something that happened at TSC value `tsc`.
    pub fn at(name: &str, tsc: u64) -> Self {
        let mut event = Event {
            buf: [0; LINE_CAPACITY],
            len: 0,
            truncated: false,
        };
        event.raw("@probe {\"t_us\":");
        event.number(time::tsc_to_micros_since_entry(tsc));
        event.raw(",\"event\":");
        event.quoted(name);
        event
    }

    /// Add an unsigned number field.
    pub fn u64(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        self.number(value);
        self
    }

    /// Add a boolean field.
    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.raw(if value { "true" } else { "false" });
        self
    }

    /// Add a string field (escaped).
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        self.quoted(value);
        self
    }

    /// Add a string field from format arguments (escaped).
    pub fn fmt(mut self, key: &str, args: core::fmt::Arguments<'_>) -> Self {
        self.key(key);
        self.raw("\"");
        let _ = Escaped(&mut self).write_fmt(args);
        self.raw("\"");
        self
    }

    /// Add a hexadecimal string field, `"0x..."`.
    pub fn hex(self, key: &str, value: u64) -> Self {
        self.fmt(key, format_args!("{value:#x}"))
    }

    /// Close the object and write the line to the serial port.
    pub fn emit(mut self) {
        if self.truncated {
            self.truncated = false;
            self.raw(",\"truncated\":true");
        }
        self.force("}\r\n");
        serial::write_bytes(&self.buf[..self.len]);
    }

    fn key(&mut self, key: &str) {
        self.raw(",");
        self.quoted(key);
        self.raw(":");
    }

    fn number(&mut self, value: u64) {
        let _ = write!(Raw(self), "{value}");
    }

    fn quoted(&mut self, text: &str) {
        self.raw("\"");
        let _ = Escaped(self).write_str(text);
        self.raw("\"");
    }

    /// Append unless it would eat into the tail reserve.
    fn raw(&mut self, text: &str) {
        let bytes = text.as_bytes();
        if self.len + bytes.len() + TAIL_RESERVE > LINE_CAPACITY {
            self.truncated = true;
            return;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Append into the tail reserve (closing text only).
    fn force(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let room = LINE_CAPACITY - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }
}

/// Writes text unescaped.
struct Raw<'a>(&'a mut Event);

impl Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.raw(s);
        Ok(())
    }
}

/// Writes text as the inside of a JSON string.
struct Escaped<'a>(&'a mut Event);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.raw("\\\""),
                '\\' => self.0.raw("\\\\"),
                '\n' => self.0.raw("\\n"),
                '\r' => self.0.raw("\\r"),
                '\t' => self.0.raw("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(Raw(self.0), "\\u{:04x}", c as u32);
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    self.0.raw(c.encode_utf8(&mut utf8));
                }
            }
        }
        Ok(())
    }
}
