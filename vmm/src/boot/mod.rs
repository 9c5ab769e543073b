//! Booting a kernel: loading it, filling the zero page, and the vCPU's initial state.

pub mod cpu;
pub mod loader;
pub mod params;
