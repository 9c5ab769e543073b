//! A KVM virtual machine: creation, boot setup, devices, and running it to its end.
//!
//! ```text
//! Vm::new(config)      open /dev/kvm, create the VM (in-kernel irqchip + PIT), guest RAM,
//!                      load kernel/initrd, boot page tables, legacy devices, vCPUs
//! vm.add_*_device()    more devices (virtio-mmio), vm.append_cmdline() announces them
//! vm.run()             zero page + command line, one thread per vCPU, wait for the end
//! ```

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use kvm_bindings::{kvm_pit_config, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use linux_loader::cmdline::Cmdline;
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::Killable;

use crate::acpi::{self, AcpiError};
use crate::boot::cpu::{self, CpuSetupError};
use crate::boot::loader::{self, LoadError, LoadedKernel};
use crate::boot::params::{self, InitrdPlacement, ParamsError};
use crate::devices::bus::{Bus, BusError, SharedDevice};
use crate::devices::legacy::{DebugExit, I8042};
use crate::devices::serial::{Discard, SerialDevice};
use crate::events::{self, Event, EventSink};
use crate::exit::{ExitReason, VmExit};
use crate::exit_notifier::ExitNotifier;
use crate::layout;
use crate::memory::{self, MemoryError};
use crate::{seccomp, signals, vcpu};

/// Where the guest's serial output goes.
pub enum SerialOutput {
    /// The VMM's stdout.
    Stdout,
    /// A file (created or truncated).
    File(PathBuf),
    /// Discarded.
    None,
    /// Any writer (tests, benchmarks and `vnetbed doctor` use this).
    Writer(Box<dyn Write + Send>),
}

impl std::fmt::Debug for SerialOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SerialOutput::Stdout => write!(f, "stdout"),
            SerialOutput::File(p) => write!(f, "file:{}", p.display()),
            SerialOutput::None => write!(f, "none"),
            SerialOutput::Writer(_) => write!(f, "writer"),
        }
    }
}

/// What to boot, and how.
#[derive(Debug)]
pub struct VmConfig {
    /// ELF64 or bzImage kernel.
    pub kernel: PathBuf,
    /// Optional initrd.
    pub initrd: Option<PathBuf>,
    /// Kernel command line (devices append their announcements).
    pub cmdline: String,
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// Number of vCPUs.
    pub vcpus: usize,
    /// Serial output.
    pub serial: SerialOutput,
    /// Event stream.
    pub events: EventSink,
}

/// Errors building or starting a VM. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// No /dev/kvm.
    #[error("/dev/kvm does not exist: this host has no KVM. Load the module (`modprobe kvm_intel` or `modprobe kvm_amd`), enable virtualization in the firmware, or use a host/VM with (nested) KVM")]
    NoKvm,
    /// No permission on /dev/kvm.
    #[error("permission denied opening /dev/kvm: run as root, or add your user to the `kvm` group (`sudo usermod -aG kvm $USER`, then log in again)")]
    KvmPermission,
    /// Any other failure opening /dev/kvm (e.g. ENXIO/ENODEV: the node exists, the module
    /// behind it is not loaded or has no hardware support).
    #[error("cannot open /dev/kvm: {0}; load the KVM module for this CPU (`modprobe kvm_intel` or `modprobe kvm_amd`; check `dmesg` for why it refused) and enable virtualization (VT-x/AMD-V) in the firmware or the hypervisor running this host")]
    KvmOpen(#[source] kvm_ioctls::Error),
    /// KVM too old or missing a capability.
    #[error("this KVM lacks {0}, which vnetbed needs; use a newer host kernel")]
    MissingCapability(&'static str),
    /// A KVM ioctl failed.
    #[error("KVM {what} failed: {source}")]
    Kvm {
        /// Which step.
        what: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Bad vCPU count.
    #[error("--vcpus {asked} is out of range: give 1 to {max} ({why})")]
    VcpuCount {
        /// Asked for.
        asked: usize,
        /// The largest count vnetbed accepts on this host.
        max: usize,
        /// What sets that limit.
        why: String,
    },
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Kernel or initrd loading.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Boot tables.
    #[error(transparent)]
    Cpu(#[from] CpuSetupError),
    /// Zero page.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// ACPI tables.
    #[error(transparent)]
    Acpi(#[from] AcpiError),
    /// The kernel command line.
    #[error("invalid kernel command line: {0}; it must be printable ASCII and at most {max} bytes", max = layout::CMDLINE_MAX_SIZE - 1)]
    Cmdline(String),
    /// The serial output file.
    #[error("cannot create serial output file {path}: {source}")]
    SerialFile {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Device placement.
    #[error("device placement: {0}")]
    Bus(#[from] BusError),
    /// Too many virtio devices.
    #[error("too many virtio-mmio devices: at most {max}", max = layout::MAX_VIRTIO_DEVICES)]
    TooManyDevices,
    /// eventfd, thread or signal setup.
    #[error("{what}: {source}")]
    Host {
        /// Which step.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

fn host_err(what: &'static str) -> impl FnOnce(std::io::Error) -> VmError {
    move |source| VmError::Host { what, source }
}

/// A slot for a virtio-mmio device: where it lives and which GSI it interrupts on.
#[derive(Debug, Clone, Copy)]
pub struct VirtioSlot {
    /// Index among the VM's virtio devices.
    pub index: usize,
    /// MMIO base address.
    pub base: u64,
    /// Size of the register window.
    pub size: u64,
    /// GSI.
    pub irq: u32,
}

/// A configured virtual machine, ready to [`Vm::run`].
pub struct Vm {
    fd: VmFd,
    mem: GuestMemoryMmap,
    vcpus: Vec<VcpuFd>,
    pio: Bus,
    mmio: Bus,
    exit: ExitNotifier,
    kernel: LoadedKernel,
    initrd: Option<InitrdPlacement>,
    cmdline: String,
    events: EventSink,
    virtio_slots: Vec<VirtioSlot>,
    pci: Option<crate::pci_netdev::PciBus>,
    mem_mib: u64,
    _kvm: Kvm,
}

/// Open /dev/kvm with an actionable error.
pub fn open_kvm() -> Result<Kvm, VmError> {
    Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT => VmError::NoKvm,
        libc::EACCES | libc::EPERM => VmError::KvmPermission,
        _ => VmError::KvmOpen(e),
    })
}

/// Most vCPUs vnetbed supports: the MADT's processor and APIC IDs and CPUID leaf 1's initial
/// APIC ID are 8-bit fields (0..=254 usable; 255 is the broadcast APIC ID).
pub const MAX_VCPUS: usize = 255;

/// Check `asked` against [`MAX_VCPUS`] and the host KVM's maximum `kvm_max`.
pub fn check_vcpu_count(asked: usize, kvm_max: usize) -> Result<(), VmError> {
    let (max, why) = if kvm_max < MAX_VCPUS {
        (kvm_max, format!("this host's KVM allows at most {kvm_max}"))
    } else {
        (
            MAX_VCPUS,
            format!(
                "vnetbed's ACPI MADT and CPUID describe vCPUs with 8-bit APIC IDs, so it supports at most {MAX_VCPUS}"
            ),
        )
    };
    if asked == 0 || asked > max {
        return Err(VmError::VcpuCount { asked, max, why });
    }
    Ok(())
}

impl Vm {
    /// Build a VM from `config`: everything short of running it.
    pub fn new(config: VmConfig) -> Result<Self, VmError> {
        let kvm = open_kvm()?;
        if kvm.get_api_version() != 12 {
            return Err(VmError::MissingCapability("KVM API version 12"));
        }
        for (cap, name) in [
            (Cap::Irqchip, "an in-kernel irqchip"),
            (Cap::Pit2, "an in-kernel PIT"),
            (Cap::Irqfd, "irqfd"),
            (Cap::Ioeventfd, "ioeventfd"),
            (Cap::UserMemory, "user memory slots"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(VmError::MissingCapability(name));
            }
        }
        check_vcpu_count(config.vcpus, kvm.get_max_vcpus())?;
        let mem = memory::create_guest_memory(config.mem_mib)?;
        let kernel = loader::load_kernel(&mem, &config.kernel)?;
        let initrd = match &config.initrd {
            Some(p) => Some(loader::load_initrd(&mem, p, kernel.end)?),
            None => None,
        };
        cpu::write_boot_tables(&mem)?;

        let fd = kvm.create_vm().map_err(kvm_err("create VM"))?;
        // The TSS pages are unused by 64-bit guests but required by KVM on Intel.
        fd.set_tss_address(layout::KVM_TSS_START as usize)
            .map_err(kvm_err("set TSS address"))?;
        fd.create_irq_chip().map_err(kvm_err("create irqchip"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(kvm_err("create PIT"))?;
        memory::register_with_kvm(&fd, &mem)?;

        let exit = ExitNotifier::new().map_err(host_err("exit eventfd"))?;
        let mut pio = Bus::new();
        let serial_out: Box<dyn Write + Send> = match config.serial {
            SerialOutput::Stdout => Box::new(std::io::stdout()),
            SerialOutput::File(path) => Box::new(
                File::create(&path).map_err(|source| VmError::SerialFile { path, source })?,
            ),
            SerialOutput::None => Box::new(Discard),
            SerialOutput::Writer(w) => w,
        };
        let serial_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("serial eventfd"))?;
        fd.register_irqfd(&serial_irq, layout::SERIAL_IRQ)
            .map_err(kvm_err("register serial irqfd"))?;
        let serial: SharedDevice = Arc::new(Mutex::new(SerialDevice::new(serial_irq, serial_out)));
        pio.insert(u64::from(layout::SERIAL_PORT_BASE), 8, serial)?;
        pio.insert(
            u64::from(layout::I8042_PORT),
            1,
            Arc::new(Mutex::new(I8042::new(exit.clone()))),
        )?;
        pio.insert(
            u64::from(layout::DEBUG_EXIT_PORT),
            4,
            Arc::new(Mutex::new(DebugExit::new(exit.clone()))),
        )?;

        let base_cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("get supported CPUID"))?;
        let mut vcpus = Vec::with_capacity(config.vcpus);
        for i in 0..config.vcpus {
            let v = fd.create_vcpu(i as u64).map_err(kvm_err("create vCPU"))?;
            v.set_cpuid2(&cpu::cpuid_for_vcpu(base_cpuid.clone(), i, config.vcpus))
                .map_err(kvm_err("set CPUID"))?;
            if i == 0 {
                let sregs = v.get_sregs().map_err(kvm_err("get sregs"))?;
                v.set_sregs(&cpu::boot_sregs(sregs))
                    .map_err(kvm_err("set sregs"))?;
                v.set_regs(&cpu::boot_regs(kernel.entry))
                    .map_err(kvm_err("set regs"))?;
                v.set_fpu(&cpu::boot_fpu()).map_err(kvm_err("set FPU"))?;
            }
            // Application processors stay in KVM's wait-for-SIPI state until the guest starts them.
            vcpus.push(v);
        }

        Ok(Self {
            fd,
            mem,
            vcpus,
            pio,
            mmio: Bus::new(),
            exit,
            kernel,
            initrd,
            cmdline: config.cmdline,
            events: config.events,
            virtio_slots: Vec::new(),
            pci: None,
            mem_mib: config.mem_mib,
            _kvm: kvm,
        })
    }

    /// Guest memory.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// The KVM VM (for irqfd/ioeventfd registration).
    pub fn vm_fd(&self) -> &VmFd {
        &self.fd
    }

    /// A second descriptor of the KVM VM, for devices that change KVM state (MSI routes,
    /// ioeventfds) from vCPU threads while the VM runs.
    pub fn dup_vm_fd(&self) -> Result<VmFd, VmError> {
        // SAFETY: dup of a descriptor this VM owns; the result is checked.
        let fd = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&self.fd)) };
        if fd < 0 {
            return Err(VmError::Host {
                what: "dup the VM descriptor",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a fresh descriptor of a KVM VM, owned by nothing else.
        unsafe { self._kvm.create_vmfd_from_rawfd(fd) }.map_err(kvm_err("VM descriptor"))
    }

    /// The VM's PCI bus 0, created (with its ECAM, ports and windows) on first use.
    pub fn pci_bus(&mut self) -> Result<&mut crate::pci_netdev::PciBus, VmError> {
        let bus = match self.pci.take() {
            Some(bus) => bus,
            None => crate::pci_netdev::PciBus::create(self, self.mem_mib << 20)?,
        };
        Ok(self.pci.insert(bus))
    }

    /// A handle devices use to end the VM.
    pub fn exit_notifier(&self) -> ExitNotifier {
        self.exit.clone()
    }

    /// The event stream.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// The loaded kernel.
    pub fn kernel(&self) -> &LoadedKernel {
        &self.kernel
    }

    /// Put a device on the port-I/O bus.
    pub fn add_pio_device(
        &mut self,
        base: u16,
        len: u16,
        dev: SharedDevice,
    ) -> Result<(), VmError> {
        Ok(self.pio.insert(u64::from(base), u64::from(len), dev)?)
    }

    /// Put a device on the MMIO bus.
    pub fn add_mmio_device(
        &mut self,
        base: u64,
        len: u64,
        dev: SharedDevice,
    ) -> Result<(), VmError> {
        Ok(self.mmio.insert(base, len, dev)?)
    }

    /// Reserve the next virtio-mmio slot and announce it on the command line in Linux syntax
    /// (`virtio_mmio.device=4K@0xd0000000:5`). The caller puts the device at `slot.base`.
    pub fn allocate_virtio_slot(&mut self) -> Result<VirtioSlot, VmError> {
        let index = self.virtio_slots.len();
        if index >= layout::MAX_VIRTIO_DEVICES {
            return Err(VmError::TooManyDevices);
        }
        let slot = VirtioSlot {
            index,
            base: layout::virtio_mmio_base(index),
            size: layout::VIRTIO_MMIO_DEVICE_SIZE,
            irq: layout::virtio_irq(index),
        };
        self.append_cmdline(&format!(
            "virtio_mmio.device={}K@{:#x}:{}",
            slot.size >> 10,
            slot.base,
            slot.irq
        ));
        // Kept: the next device gets the next slot, and the DSDT describes every slot (a
        // stock Debian kernel finds virtio-mmio devices only there).
        self.virtio_slots.push(slot);
        Ok(slot)
    }

    /// The virtio-mmio slots handed out so far, in order (the DSDT's `LNRO0005` devices).
    pub fn virtio_slots(&self) -> &[VirtioSlot] {
        &self.virtio_slots
    }

    /// Append `s` to the kernel command line.
    pub fn append_cmdline(&mut self, s: &str) {
        if !self.cmdline.is_empty() {
            self.cmdline.push(' ');
        }
        self.cmdline.push_str(s);
    }

    /// The kernel command line as it will be passed.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    fn write_boot_params(&self) -> Result<(), VmError> {
        let mut cl =
            Cmdline::new(layout::CMDLINE_MAX_SIZE).map_err(|e| VmError::Cmdline(e.to_string()))?;
        if !self.cmdline.is_empty() {
            cl.insert_str(&self.cmdline)
                .map_err(|e| VmError::Cmdline(e.to_string()))?;
        }
        let len = cl
            .as_cstring()
            .map_err(|e| VmError::Cmdline(e.to_string()))?
            .as_bytes_with_nul()
            .len();
        linux_loader::loader::load_cmdline(&self.mem, GuestAddress(layout::CMDLINE_START), &cl)
            .map_err(|e| VmError::Cmdline(e.to_string()))?;
        let devices: Vec<acpi::MmioDevice> = self
            .virtio_slots
            .iter()
            .map(|s| acpi::MmioDevice {
                base: s.base,
                size: s.size,
                irq: s.irq,
            })
            .collect();
        let pci = self.pci.as_ref().map(|p| p.acpi());
        let tables = acpi::build_with_pci(self.vcpus.len(), &devices, pci.as_ref())?;
        let rsdp = acpi::write(&self.mem, &tables)?;
        params::write_boot_params(
            &self.mem,
            self.kernel.setup_header,
            len,
            self.initrd,
            Some(rsdp),
        )?;
        Ok(())
    }

    /// Boot and run the guest until it ends; returns why it ended.
    pub fn run(self) -> Result<VmExit, VmError> {
        self.write_boot_params()?;
        vcpu::install_kick_handler().map_err(|e| VmError::Host {
            what: "kick signal handler",
            source: e.into(),
        })?;
        signals::wake_on_stop(std::os::fd::AsRawFd::as_raw_fd(self.exit.event()));
        signals::route_stop_signals(&[libc::SIGINT, libc::SIGTERM]).map_err(|e| VmError::Host {
            what: "SIGINT/SIGTERM handlers",
            source: e.into(),
        })?;
        self.events.emit(Event::Start(events::Start {
            pid: std::process::id(),
            vcpus: self.vcpus.len(),
            mem_mib: self.mem_mib,
            kernel_format: format!("{:?}", self.kernel.format),
            entry: self.kernel.entry,
            cmdline: self.cmdline.clone(),
        }));
        // Opened now: under seccomp the main thread cannot open files any more.
        let smaps = File::open("/proc/self/smaps").ok();
        // Every vCPU thread confines itself, then the main thread, then the guest runs.
        let confined = Arc::new(Barrier::new(self.vcpus.len() + 1));
        let mut handles = Vec::new();
        for (index, fd) in self.vcpus.into_iter().enumerate() {
            let ctx = vcpu::VcpuContext {
                index,
                fd,
                pio: self.pio.clone(),
                mmio: self.mmio.clone(),
                exit: self.exit.clone(),
                confined: confined.clone(),
            };
            let h = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn(move || vcpu::run_vcpu(ctx))
                .map_err(host_err("spawn vCPU thread"))?;
            handles.push(h);
        }
        confined.wait();
        seccomp::apply_or_exit(seccomp::ThreadKind::Main);
        confined.wait();
        let exit = loop {
            // Blocks until a vCPU, a device or a signal handler writes the eventfd.
            let _ = self.exit.event().read();
            if let Some(e) = self.exit.recorded() {
                break e;
            }
            if let Some(sig) = signals::stop_signal() {
                self.exit.request(ExitReason::Signal(sig));
            }
        };
        self.exit.stop_flag().store(true, Ordering::Release);
        // Kick until every vCPU thread has left KVM_RUN: a single signal could arrive just
        // before a thread re-enters the ioctl and be missed.
        while handles.iter().any(|h| !h.is_finished()) {
            for h in handles.iter().filter(|h| !h.is_finished()) {
                let _ = h.kill(vcpu::kick_signal());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        for h in handles {
            let _ = h.join();
        }
        signals::clear_wake_fd();
        let rss = smaps.and_then(|f| memory::vmm_rss_from_smaps(f, &self.mem));
        self.events.emit(Event::Exit(events::Exit {
            status: exit.reason.status(),
            reason: exit.reason.kind().to_string(),
            message: exit.reason.to_string(),
            vmm_rss_kib: rss,
        }));
        Ok(exit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_kvm_open_errors_say_to_load_the_module() {
        for errno in [libc::ENXIO, libc::ENODEV] {
            let e = VmError::KvmOpen(kvm_ioctls::Error::new(errno)).to_string();
            assert!(e.starts_with("cannot open /dev/kvm: "), "{e}");
            assert!(
                e.contains("`modprobe kvm_intel` or `modprobe kvm_amd`")
                    && e.contains("enable virtualization (VT-x/AMD-V)"),
                "{e}"
            );
        }
    }

    #[test]
    fn vcpu_count_is_capped_by_the_8_bit_apic_ids() {
        assert!(check_vcpu_count(1, 1024).is_ok());
        assert!(check_vcpu_count(255, 1024).is_ok());
        let e = check_vcpu_count(256, 1024).unwrap_err().to_string();
        assert_eq!(
            e,
            "--vcpus 256 is out of range: give 1 to 255 (vnetbed's ACPI MADT and CPUID describe \
             vCPUs with 8-bit APIC IDs, so it supports at most 255)"
        );
        let e = check_vcpu_count(0, 1024).unwrap_err().to_string();
        assert!(
            e.starts_with("--vcpus 0 is out of range: give 1 to 255"),
            "{e}"
        );
    }

    #[test]
    fn vcpu_count_is_capped_by_a_smaller_kvm_maximum() {
        assert!(check_vcpu_count(16, 16).is_ok());
        let e = check_vcpu_count(17, 16).unwrap_err().to_string();
        assert_eq!(
            e,
            "--vcpus 17 is out of range: give 1 to 16 (this host's KVM allows at most 16)"
        );
    }
}
