//! vnetbed as a library: the parts the subcommands share and the tests use directly.
//!
//! - [`record`]: the crash-safe run record, `timeline.jsonl`;
//! - [`report`]: the verdict and the reports built from it.

pub mod record;
pub mod report;
