//! The VMM's event stream: JSON lines written to `--events PATH`.
//!
//! Every line is one [`Stamped`] [`Event`]: a JSON object with
//! - `"event"`: the kind (`start`, `exit`, `device_activated`, `counters`, `stall`,
//!   `recovered`, `error`, `backend`);
//! - `"ts"`: wall-clock time, seconds since the Unix epoch (float);
//! - `"t_ms"`: milliseconds since the VMM started (monotonic);
//!
//! and the kind's own fields, as the types in [`types`] define them. The VMM writes these
//! types and the soak orchestrator reads them back with the same types, so renaming a field
//! is a compile error on both sides. Each line is flushed as it is written, so a reader sees
//! it at once and a crash loses nothing already emitted.

mod sink;
pub mod types;

pub use sink::EventSink;
pub use types::*;
