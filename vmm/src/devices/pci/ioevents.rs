//! Kicks without a VM exit: KVM ioeventfds on a function's notify addresses (MMIO, or the
//! legacy notify port), moved when the guest moves the BAR they sit in.

use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::EventFd;

/// Where a function registers its notify EventFds.
pub trait IoEvents: Send {
    /// Signal `fd` on any store to MMIO address `addr`.
    fn register(&self, fd: &EventFd, addr: u64) -> Result<(), kvm_ioctls::Error>;
    /// Undo [`IoEvents::register`].
    fn unregister(&self, fd: &EventFd, addr: u64) -> Result<(), kvm_ioctls::Error>;
    /// Signal `fd` on a 16-bit `out` of `value` to I/O port `port` (the legacy queue
    /// notify register, where every queue shares one port and the value names the queue).
    fn register_pio(&self, fd: &EventFd, port: u64, value: u16) -> Result<(), kvm_ioctls::Error>;
    /// Undo [`IoEvents::register_pio`].
    fn unregister_pio(&self, fd: &EventFd, port: u64, value: u16) -> Result<(), kvm_ioctls::Error>;
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
    fn register_pio(&self, fd: &EventFd, port: u64, value: u16) -> Result<(), kvm_ioctls::Error> {
        // Datamatch on a u16: KVM matches 2-byte writes of exactly `value` (the queue index
        // Linux's legacy driver and the probe write with `outw`); anything else exits.
        self.0
            .register_ioevent(fd, &IoEventAddress::Pio(port), value)
    }
    fn unregister_pio(&self, fd: &EventFd, port: u64, value: u16) -> Result<(), kvm_ioctls::Error> {
        self.0
            .unregister_ioevent(fd, &IoEventAddress::Pio(port), value)
    }
}
