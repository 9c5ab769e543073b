//! KVM's GSI routing table (KVM_SET_GSI_ROUTING), owned by the VMM: the in-kernel
//! irqchip's default routes for GSIs 0-23 (which the table replaces, so they are written
//! again here exactly as KVM sets them up: IOAPIC pin = GSI, and the PIC for GSIs 0-15) plus
//! one MSI route per MSI-X vector, on GSIs from [`FIRST_MSI_GSI`]. Each vector's irqfd is
//! bound to its GSI, so the device thread raises a vector with one EventFd write.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::VmFd;

use crate::layout::IRQ_MAX;

/// First GSI handed to MSI routes (the IOAPIC's inputs are 0..=IRQ_MAX).
pub const FIRST_MSI_GSI: u32 = IRQ_MAX + 1;
/// Most MSI routes vnetbed hands out (KVM allows 1024 GSIs on x86).
pub const MAX_MSI_GSIS: u32 = 256;

/// An MSI message: the address and data a vector's table entry holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsiMessage {
    /// Message address (0xFEEx_xxxx on x86: the destination APIC).
    pub address: u64,
    /// Message data (the x86 vector and delivery mode).
    pub data: u32,
}

/// Errors changing the routes.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// KVM refused the table.
    #[error("KVM_SET_GSI_ROUTING failed: {0}")]
    Kvm(#[source] kvm_ioctls::Error),
    /// The table could not be built.
    #[error("cannot build the GSI routing table: {0}")]
    Table(String),
    /// All MSI GSIs are taken.
    #[error("no MSI GSI left (at most {MAX_MSI_GSIS})")]
    Exhausted,
}

/// Where MSI routes are set: KVM for a VM ([`KvmRoutes`]); the MSI-X table only needs this.
pub trait MsiRoutes: Send + Sync {
    /// Route `gsi` to `message`, or take its route away (`None`).
    fn set_route(&self, gsi: u32, message: Option<MsiMessage>) -> Result<(), RouteError>;
}

/// The VM's routing table in KVM.
pub struct KvmRoutes {
    vm: VmFd,
    state: Mutex<RouteState>,
}

struct RouteState {
    msi: BTreeMap<u32, MsiMessage>,
    next_gsi: u32,
}

fn irqchip(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    e
}

/// The routes KVM installs with the in-kernel irqchip (arch/x86/kvm/irq_comm.c,
/// `default_routing`): every IOAPIC input on its own GSI, and the PIC on GSIs 0-15.
pub fn default_entries() -> Vec<kvm_irq_routing_entry> {
    let mut v = Vec::new();
    for gsi in 0..=IRQ_MAX {
        v.push(irqchip(gsi, KVM_IRQCHIP_IOAPIC, gsi));
        if gsi < 16 {
            let chip = if gsi < 8 {
                KVM_IRQCHIP_PIC_MASTER
            } else {
                KVM_IRQCHIP_PIC_SLAVE
            };
            v.push(irqchip(gsi, chip, gsi % 8));
        }
    }
    v
}

fn msi_entry(gsi: u32, m: MsiMessage) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_MSI,
        ..Default::default()
    };
    e.u.msi.address_lo = m.address as u32;
    e.u.msi.address_hi = (m.address >> 32) as u32;
    e.u.msi.data = m.data;
    e
}

impl KvmRoutes {
    /// The routes of the VM behind `vm` (a descriptor of its own: the vCPU threads change
    /// routes while the guest programs MSI-X tables). Installs the default table.
    pub fn new(vm: VmFd) -> Result<Self, RouteError> {
        let routes = Self {
            vm,
            state: Mutex::new(RouteState {
                msi: BTreeMap::new(),
                next_gsi: FIRST_MSI_GSI,
            }),
        };
        let state = routes.lock();
        routes.commit(&state)?;
        drop(state);
        Ok(routes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RouteState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `n` consecutive unused GSIs for MSI routes; returns the first.
    pub fn allocate(&self, n: u32) -> Result<u32, RouteError> {
        let mut s = self.lock();
        let first = s.next_gsi;
        if first + n > FIRST_MSI_GSI + MAX_MSI_GSIS {
            return Err(RouteError::Exhausted);
        }
        s.next_gsi += n;
        Ok(first)
    }

    fn commit(&self, s: &RouteState) -> Result<(), RouteError> {
        let mut entries = default_entries();
        entries.extend(s.msi.iter().map(|(&gsi, &m)| msi_entry(gsi, m)));
        let table = KvmIrqRouting::from_entries(&entries)
            .map_err(|e| RouteError::Table(format!("{e:?}")))?;
        self.vm.set_gsi_routing(&table).map_err(RouteError::Kvm)
    }
}

impl MsiRoutes for KvmRoutes {
    fn set_route(&self, gsi: u32, message: Option<MsiMessage>) -> Result<(), RouteError> {
        let mut s = self.lock();
        let changed = match message {
            Some(m) => s.msi.insert(gsi, m) != Some(m),
            None => s.msi.remove(&gsi).is_some(),
        };
        if changed {
            self.commit(&s)?;
        }
        Ok(())
    }
}

/// The routes as KVM would hold them, for tests of the MSI-X table on hosts without KVM
/// (the table's contract with KVM is only this map).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct RecordedRoutes(pub Mutex<BTreeMap<u32, MsiMessage>>);

#[cfg(test)]
impl MsiRoutes for RecordedRoutes {
    fn set_route(&self, gsi: u32, m: Option<MsiMessage>) -> Result<(), RouteError> {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match m {
            Some(m) => r.insert(gsi, m),
            None => r.remove(&gsi),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_is_kvms() {
        let e = default_entries();
        // 24 IOAPIC inputs and 16 PIC inputs.
        assert_eq!(e.len(), 40);
        assert!(e.iter().all(|e| e.type_ == KVM_IRQ_ROUTING_IRQCHIP));
        // SAFETY: irqchip entries were written through the irqchip member.
        let pic9 = e
            .iter()
            .find(|x| x.gsi == 9 && unsafe { x.u.irqchip.irqchip } == KVM_IRQCHIP_PIC_SLAVE)
            .map(|x| unsafe { x.u.irqchip.pin });
        assert_eq!(pic9, Some(1));
    }
}
