//! Attaching a vhost-user virtio-net device to a VM (`vnetbed run --vhost-user`): connect
//! to the backend and negotiate, then put vnetbed's device model on virtio-mmio as for a tap
//! NIC.

use std::time::Duration;

use crate::devices::virtio::net::vhost_user::{
    Connection, VhostUserConfig, VhostUserError, VhostUserNet,
};
use crate::netdev::{place_on_mmio, AttachedNet, NetDevError};
use crate::vm::Vm;

/// Errors attaching a vhost-user NIC.
#[derive(Debug, thiserror::Error)]
pub enum VhostNetDevError {
    /// Talking to the backend.
    #[error(transparent)]
    Backend(#[from] VhostUserError),
    /// Putting the device on the VM.
    #[error(transparent)]
    Attach(#[from] NetDevError),
}

/// Connect to the backend of `cfg`, create the device and put it on the VM; the watchdog
/// reports a queue stalled for `stall_timeout`.
pub fn attach_vhost_user_net(
    vm: &mut Vm,
    cfg: &VhostUserConfig,
    stall_timeout: Duration,
) -> Result<AttachedNet, VhostNetDevError> {
    let conn = Connection::connect(&cfg.socket, vm.memory())?;
    let slot = vm.allocate_virtio_slot().map_err(NetDevError::from)?;
    let net = VhostUserNet::new(
        cfg,
        conn,
        vm.memory(),
        stall_timeout,
        vm.events().clone(),
        vm.exit_notifier(),
    )
    .map_err(NetDevError::from)?;
    Ok(place_on_mmio(vm, slot, Box::new(net))?)
}
