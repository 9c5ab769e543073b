//! Guest RAM: allocation through `vm-memory` (backed by one memfd, so that a vhost-user
//! backend can map it) and registration with KVM.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::layout::{ram_regions, MIN_MEM_MIB};

/// Errors creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Below the minimum.
    #[error("--mem {0} MiB is too small: vnetbed needs at least {MIN_MEM_MIB} MiB for the boot structures and the kernel")]
    TooSmall(u64),
    /// Too large to be addressed: `MiB << 20` does not fit in 64 bits.
    #[error("--mem {0} MiB is too large: the size in bytes does not fit in 64 bits; --mem is in MiB (e.g. --mem 1024 for 1 GiB) and must fit in host memory")]
    TooLarge(u64),
    /// A guest memory region has no host mapping to hand to KVM (a vnetbed bug).
    #[error("guest memory region {slot} at guest address {guest_addr:#x} has no host mapping ({source}); this is a vnetbed bug: please report it with the --mem value used")]
    HostAddress {
        /// Slot number.
        slot: u32,
        /// The region's guest-physical start.
        guest_addr: u64,
        /// vm-memory's error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    /// mmap failed.
    #[error(
        "cannot allocate {mib} MiB of guest memory: {source}; lower --mem or free host memory"
    )]
    Allocate {
        /// The size asked for.
        mib: u64,
        /// The error.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    /// The memfd backing guest RAM could not be created or sized.
    #[error("cannot create a {mib} MiB memfd for guest memory: {source}; lower --mem or free host memory")]
    Memfd {
        /// The size asked for.
        mib: u64,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// KVM refused the memory slot.
    #[error("KVM refused guest memory slot {slot}: {source}")]
    Register {
        /// Slot number.
        slot: u32,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// Allocate `mem_mib` MiB of guest RAM laid out by [`ram_regions`].
pub fn create_guest_memory(mem_mib: u64) -> Result<GuestMemoryMmap, MemoryError> {
    if mem_mib < MIN_MEM_MIB {
        return Err(MemoryError::TooSmall(mem_mib));
    }
    let bytes = mem_mib
        .checked_mul(1 << 20)
        .ok_or(MemoryError::TooLarge(mem_mib))?;
    let memfd = guest_memfd(bytes).map_err(|source| MemoryError::Memfd {
        mib: mem_mib,
        source,
    })?;
    // One memfd holds all of guest RAM, each region at its own offset, so that the regions
    // can be handed to another process (a vhost-user backend maps them from the fd).
    let mut offset = 0u64;
    let ranges: Vec<(GuestAddress, usize, Option<FileOffset>)> = ram_regions(bytes)
        .into_iter()
        .map(|(s, l)| {
            let file = FileOffset::from_arc(memfd.clone(), offset);
            offset += l;
            (GuestAddress(s), l as usize, Some(file))
        })
        .collect();
    let mem = GuestMemoryMmap::from_ranges_with_files(&ranges).map_err(|source| {
        MemoryError::Allocate {
            mib: mem_mib,
            source,
        }
    })?;
    for (start, end) in host_ranges(&mem) {
        // Guest RAM is never inherited by a child process (the VMM spawns none today, but a
        // fork must not copy-on-write gigabytes), and the distinct VMA flag keeps the kernel
        // from merging guest RAM with the VMM's own anonymous memory, so /proc/self/smaps can
        // tell them apart for `vmm_rss_beyond_guest_kib`.
        // SAFETY: the range is exactly a live mapping owned by `mem`; MADV_DONTFORK changes
        // no contents.
        let rc = unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                (end - start) as usize,
                libc::MADV_DONTFORK,
            )
        };
        if rc != 0 {
            tracing::warn!(
                "madvise(MADV_DONTFORK) on guest memory failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(mem)
}

/// An anonymous, sealed-size memfd of `bytes` bytes (`memfd_create` + `ftruncate`).
fn guest_memfd(bytes: u64) -> std::io::Result<std::sync::Arc<std::fs::File>> {
    use std::os::fd::FromRawFd;
    // SAFETY: the name is a valid NUL-terminated string; memfd_create has no other
    // memory-safety preconditions.
    let fd = unsafe { libc::memfd_create(c"vnetbed-guest-ram".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.set_len(bytes)?;
    Ok(std::sync::Arc::new(file))
}

/// Register every region of `mem` with the VM.
pub fn register_with_kvm(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), MemoryError> {
    for (slot, region) in mem.iter().enumerate() {
        let slot = slot as u32;
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|source| MemoryError::HostAddress {
                slot,
                guest_addr: region.start_addr().0,
                source,
            })?;
        let desc = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mmap owned by `mem`, which the VM keeps alive for as
        // long as the VM fd exists (Vm holds both), and slots do not overlap.
        unsafe { vm.set_user_memory_region(desc) }
            .map_err(|source| MemoryError::Register { slot, source })?;
    }
    Ok(())
}

/// Host address ranges `[start, end)` backing guest RAM.
pub fn host_ranges(mem: &GuestMemoryMmap) -> Vec<(u64, u64)> {
    mem.iter()
        .filter_map(|r| {
            let h = r.get_host_address(vm_memory::MemoryRegionAddress(0)).ok()? as u64;
            Some((h, h + r.len()))
        })
        .collect()
}

/// Resident memory of this process outside guest RAM, in KiB, from /proc/self/smaps:
/// the VMM's own footprint ("RSS beyond guest memory").
pub fn vmm_rss_beyond_guest_kib(mem: &GuestMemoryMmap) -> Option<u64> {
    let smaps = std::fs::File::open("/proc/self/smaps").ok()?;
    vmm_rss_from_smaps(smaps, mem)
}

/// [`vmm_rss_beyond_guest_kib`] from a /proc/self/smaps opened earlier (a thread under
/// seccomp may not open files): rewound and read with `lseek` and `read` only.
pub fn vmm_rss_from_smaps(mut smaps: std::fs::File, mem: &GuestMemoryMmap) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    smaps.seek(SeekFrom::Start(0)).ok()?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match smaps.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let smaps = String::from_utf8_lossy(&bytes);
    let guest = host_ranges(mem);
    let mut total = 0u64;
    let mut in_guest = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                in_guest = guest.iter().any(|&(gs, ge)| start >= gs && end <= ge);
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("Rss:") {
            if !in_guest {
                total += rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_tiny_memory_with_advice() {
        let e = create_guest_memory(1).unwrap_err().to_string();
        assert!(e.contains("too small"), "{e}");
    }

    #[test]
    fn rejects_unaddressable_memory_with_advice() {
        let e = create_guest_memory(u64::MAX).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--mem {} MiB is too large: the size in bytes does not fit in 64 bits; --mem is \
                 in MiB (e.g. --mem 1024 for 1 GiB) and must fit in host memory",
                u64::MAX
            )
        );
    }

    #[test]
    fn host_address_failure_names_the_region_not_a_mem_size() {
        let e = MemoryError::HostAddress {
            slot: 1,
            guest_addr: 0x1_0000_0000,
            source: vm_memory::GuestMemoryError::InvalidGuestAddress(GuestAddress(0)),
        }
        .to_string();
        assert!(
            e.starts_with("guest memory region 1 at guest address 0x100000000 has no host mapping"),
            "{e}"
        );
        assert!(e.ends_with("this is a vnetbed bug: please report it with the --mem value used"));
        assert!(!e.contains("--mem 0"), "{e}");
    }

    #[test]
    fn guest_pages_are_not_counted_as_vmm_rss() {
        let mem = create_guest_memory(64).unwrap();
        let before = vmm_rss_beyond_guest_kib(&mem).unwrap();
        // Touch every guest page: RSS of the process grows by 64 MiB, the VMM's share must not.
        for (s, e) in host_ranges(&mem) {
            let mut a = s;
            while a < e {
                // SAFETY: `a` is inside a live guest mapping owned by `mem`.
                unsafe { std::ptr::write_volatile(a as *mut u8, 1) };
                a += 4096;
            }
        }
        let after = vmm_rss_beyond_guest_kib(&mem).unwrap();
        assert!(
            after < before + 8 * 1024,
            "before {before} KiB, after {after} KiB"
        );
    }
}
