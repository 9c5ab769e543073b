//! What was tested, as far as vnetbed knows it by itself: its version, the git revision it
//! was built from (with a dirty flag), the guest image's SHA-256, the host tools' versions
//! and the host.

use std::path::Path;

use crate::build_info;
use crate::record::{HostInfo, Identity};

/// The identity of a run of `kernel` on this host.
pub fn gather(kernel: Option<&Path>) -> Identity {
    let mut tools = std::collections::BTreeMap::new();
    for name in ["dnsmasq", "iperf3"] {
        if let Some(v) = build_info::first_line_of(name, &["--version"]) {
            tools.insert(name.to_string(), v);
        }
    }
    Identity {
        vnetbed_version: env!("CARGO_PKG_VERSION").into(),
        revision: build_info::revision().map(str::to_string),
        dirty: build_info::dirty(),
        kernel: kernel.map(|k| k.display().to_string()),
        kernel_sha256: kernel.and_then(crate::sut::sha256_of),
        tools,
        host: Some(HostInfo::detect()),
        ..Identity::default()
    }
}
