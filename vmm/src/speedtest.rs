//! Measure how fast guest code runs in ring 0 and in ring 3 on this host.
//!
//! On a host with hardware-assisted virtualization both run natively. On a nested host
//! without VMX/SVM (KVM's pagetable-based nested mode), guest ring 0 goes through KVM's
//! instruction emulator and is about 1000x slower, while ring 3 stays native. This is what
//! decides whether a stock Linux guest is practical (see nested-kvm.md).
//!
//! The guest is [`TestGuest::SpeedTest`]: it writes 'a' to the serial port, runs a ring-0
//! loop, writes 'b', drops to ring 3, runs a ring-3 loop and triple-faults. The VMM stamps
//! the two serial bytes and the fault exit.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::events::EventSink;
use crate::exit::ExitReason;
use crate::testguest::{self, TestGuest, SPEED_RING0_ITERATIONS, SPEED_RING3_ITERATIONS};
use crate::vm::{SerialOutput, Vm, VmConfig, VmError};

/// Ring 3 faster than ring 0 by more than this factor means ring 0 is emulated.
pub const EMULATION_RATIO_THRESHOLD: f64 = 20.0;

/// Measured speeds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpeedReport {
    /// Guest ring-0 instructions per second.
    pub ring0_instructions_per_s: f64,
    /// Guest ring-3 instructions per second.
    pub ring3_instructions_per_s: f64,
    /// ring 3 / ring 0.
    pub ratio: f64,
    /// Whether guest kernel mode is emulated.
    pub ring0_emulated: bool,
}

/// Errors of the measurement.
#[derive(Debug, thiserror::Error)]
pub enum SpeedTestError {
    /// The VM could not be built.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The image could not be written.
    #[error("cannot write the speed-test guest: {0}")]
    Image(#[source] std::io::Error),
    /// The guest did not behave as designed.
    #[error("the speed-test guest ended unexpectedly: {0}")]
    Unexpected(String),
}

#[derive(Clone, Default)]
struct Stamps(Arc<Mutex<Vec<(u8, Instant)>>>);

impl Write for Stamps {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let now = Instant::now();
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.extend(b.iter().map(|&c| (c, now)));
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn stamp_of(stamps: &[(u8, Instant)], c: u8) -> Option<Instant> {
    stamps.iter().find(|(b, _)| *b == c).map(|(_, t)| *t)
}

/// Boot the speed-test guest and measure.
pub fn measure() -> Result<SpeedReport, SpeedTestError> {
    let path = std::env::temp_dir().join(format!("vnetbed-speedtest-{}.elf", std::process::id()));
    testguest::write_elf(TestGuest::SpeedTest, &path).map_err(SpeedTestError::Image)?;
    let stamps = Stamps::default();
    let config = VmConfig {
        kernel: path.clone(),
        initrd: None,
        cmdline: String::new(),
        mem_mib: 16,
        vcpus: 1,
        serial: SerialOutput::Writer(Box::new(stamps.clone())),
        events: EventSink::none(),
    };
    let vm = Vm::new(config);
    let _ = std::fs::remove_file(&path);
    let exit = vm?.run()?;
    if !matches!(exit.reason, ExitReason::TripleFault { .. }) {
        return Err(SpeedTestError::Unexpected(exit.reason.to_string()));
    }
    let s = stamps.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (Some(a), Some(b)) = (stamp_of(&s, b'a'), stamp_of(&s, b'b')) else {
        return Err(SpeedTestError::Unexpected(
            "the guest did not print its markers".into(),
        ));
    };
    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    let ring0 = 2.0 * SPEED_RING0_ITERATIONS as f64 / secs(b - a);
    let ring3 = 2.0 * SPEED_RING3_ITERATIONS as f64 / secs(exit.at.saturating_duration_since(b));
    let ratio = ring3 / ring0;
    Ok(SpeedReport {
        ring0_instructions_per_s: ring0,
        ring3_instructions_per_s: ring3,
        ratio,
        ring0_emulated: ratio > EMULATION_RATIO_THRESHOLD,
    })
}
