//! What this host's KVM offers, for `vnetbed doctor`.

use kvm_ioctls::Cap;

use crate::vm::{open_kvm, VmError};

/// KVM facts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KvmCapabilities {
    /// KVM API version (12 on every supported kernel).
    pub api_version: i32,
    /// Maximum vCPUs per VM.
    pub max_vcpus: usize,
    /// Capabilities vnetbed uses: name and whether present.
    pub capabilities: Vec<(String, bool)>,
}

/// Open /dev/kvm and read its capabilities.
pub fn probe() -> Result<KvmCapabilities, VmError> {
    let kvm = open_kvm()?;
    let caps = [
        ("irqchip", Cap::Irqchip),
        ("pit2", Cap::Pit2),
        ("irqfd", Cap::Irqfd),
        ("ioeventfd", Cap::Ioeventfd),
        ("split_irqchip", Cap::SplitIrqchip),
        ("tsc_deadline_timer", Cap::TscDeadlineTimer),
        ("user_memory", Cap::UserMemory),
        ("immediate_exit", Cap::ImmediateExit),
    ];
    Ok(KvmCapabilities {
        api_version: kvm.get_api_version(),
        max_vcpus: kvm.get_max_vcpus(),
        capabilities: caps
            .iter()
            .map(|(n, c)| (n.to_string(), kvm.check_extension(*c)))
            .collect(),
    })
}
