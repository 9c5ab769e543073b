//! Kicks without a VM exit: KVM ioeventfds on a function's notify addresses, moved when
//! the guest moves the BAR they sit in.

use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::EventFd;

/// Where a function registers its notify EventFds.
pub trait IoEvents: Send {
    /// Signal `fd` on any store to MMIO address `addr`.
    fn register(&self, fd: &EventFd, addr: u64) -> Result<(), kvm_ioctls::Error>;
    /// Undo [`IoEvents::register`].
    fn unregister(&self, fd: &EventFd, addr: u64) -> Result<(), kvm_ioctls::Error>;
}

/// KVM's ioeventfds, through a VM descriptor of its own (the vCPU threads move them).
pub struct KvmIoEvents(pub VmFd);

impl IoEvents for KvmIoEvents {
    fn register(&self, fd: &EventFd, addr: u64) -> Result<(), kvm_ioctls::Error> {
        // No datamatch, length 0: any store of any width (Linux and the probe write the
        // queue index as 16 bits) signals the queue whose address it is.
        self.0
            .register_ioevent(fd, &IoEventAddress::Mmio(addr), NoDatamatch)
    }
    fn unregister(&self, fd: &EventFd, addr: u64) -> Result<(), kvm_ioctls::Error> {
        self.0
            .unregister_ioevent(fd, &IoEventAddress::Mmio(addr), NoDatamatch)
    }
}
