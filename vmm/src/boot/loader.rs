//! Loading a kernel (ELF64 vmlinux-style, or bzImage) and an initrd into guest memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::{Elf, Error as ElfError};
use linux_loader::loader::{Error as LoaderError, KernelLoader};
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, ReadVolatile};

use super::params::InitrdPlacement;
use crate::layout::{HIMEM_START, MMIO_GAP_START};

/// The bzImage's 64-bit entry point is 0x200 past the start of the protected-mode kernel.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// `xloadflags` bit: the kernel has a 64-bit entry point at 0x200.
const XLF_KERNEL_64: u16 = 1 << 0;

/// Errors while loading a kernel or initrd.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel file could not be opened.
    #[error("cannot open kernel {path}: {source}; check the path given to --kernel")]
    OpenKernel {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The initrd file could not be opened.
    #[error("cannot open initrd {path}: {source}; check the path given to --initrd")]
    OpenInitrd {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Neither ELF nor bzImage.
    #[error("{path} is neither an ELF64 kernel nor a bzImage ({detail}); give a vmlinux-style ELF or a bzImage (e.g. /boot/vmlinuz-*)")]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
        /// Why each loader refused it.
        detail: String,
    },
    /// An ELF kernel that linux-loader refused.
    #[error("{path}: invalid ELF kernel: {source}")]
    BadElf {
        /// The path given.
        path: PathBuf,
        /// linux-loader's reason.
        #[source]
        source: LoaderError,
    },
    /// A bzImage without the 64-bit entry point.
    #[error("{0}: this bzImage has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64); vnetbed boots 64-bit x86 kernels only")]
    No64BitEntry(PathBuf),
    /// The kernel or initrd does not fit.
    #[error("guest memory too small: the {what} needs guest memory up to {need_mib} MiB but the guest has {have_mib} MiB; raise --mem")]
    TooSmall {
        /// "kernel" or "initrd".
        what: &'static str,
        /// MiB needed.
        need_mib: u64,
        /// MiB available (below the MMIO gap).
        have_mib: u64,
    },
    /// Reading the initrd into guest memory failed.
    #[error("cannot read initrd {path} into guest memory: {source}")]
    ReadInitrd {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// What kind of kernel was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An ELF64 image entered at `e_entry`.
    Elf,
    /// A bzImage entered at its 64-bit entry point.
    BzImage,
}

/// A loaded kernel.
#[derive(Debug, Clone)]
pub struct LoadedKernel {
    /// Its format.
    pub format: KernelFormat,
    /// The 64-bit entry point.
    pub entry: u64,
    /// First byte past the kernel (including bss).
    pub end: u64,
    /// The bzImage setup header (None for ELF).
    pub setup_header: Option<setup_header>,
}

fn low_ram_end(mem: &GuestMemoryMmap) -> u64 {
    (mem.last_addr().raw_value() + 1).min(MMIO_GAP_START)
}

fn mib_up(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Load `path` into `mem`; ELF first, then bzImage.
pub fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, LoadError> {
    let open = || {
        File::open(path).map_err(|source| LoadError::OpenKernel {
            path: path.into(),
            source,
        })
    };
    let mut file = open()?;
    let have = low_ram_end(mem);
    let too_small = |need: u64| LoadError::TooSmall {
        what: "kernel",
        need_mib: mib_up(need),
        have_mib: have >> 20,
    };
    let elf_err = match Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))) {
        Ok(r) => {
            if r.kernel_end > have {
                return Err(too_small(r.kernel_end));
            }
            return Ok(LoadedKernel {
                format: KernelFormat::Elf,
                entry: r.kernel_load.raw_value(),
                end: r.kernel_end,
                setup_header: None,
            });
        }
        Err(LoaderError::Elf(ElfError::InvalidElfMagicNumber)) => "not ELF".to_string(),
        Err(LoaderError::Elf(ElfError::ReadKernelImage)) => {
            // A PT_LOAD segment did not fit in guest memory: say how much it would need.
            return Err(too_small(file_len(path).saturating_add(HIMEM_START)));
        }
        Err(source) => {
            return Err(LoadError::BadElf {
                path: path.into(),
                source,
            })
        }
    };
    let mut file = open()?;
    match BzImage::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))) {
        Ok(r) => {
            let hdr = r.setup_header.unwrap_or_default();
            if hdr.xloadflags & XLF_KERNEL_64 == 0 {
                return Err(LoadError::No64BitEntry(path.into()));
            }
            // The decompressor needs room for the decompressed kernel: init_size from the header.
            let need = r.kernel_load.raw_value()
                + u64::from(hdr.init_size).max(r.kernel_end - r.kernel_load.raw_value());
            if need > have {
                return Err(too_small(need));
            }
            Ok(LoadedKernel {
                format: KernelFormat::BzImage,
                entry: r.kernel_load.raw_value() + BZIMAGE_64BIT_ENTRY_OFFSET,
                end: r.kernel_end,
                setup_header: r.setup_header,
            })
        }
        Err(LoaderError::Bzimage(
            linux_loader::loader::bzimage::Error::ReadBzImageCompressedKernel,
        )) => Err(too_small(file_len(path).saturating_add(HIMEM_START))),
        Err(e) => Err(LoadError::UnknownFormat {
            path: path.into(),
            detail: format!("{elf_err}; not a bzImage: {e}"),
        }),
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Load an initrd at the top of low RAM (page aligned), above the kernel.
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel_end: u64,
) -> Result<InitrdPlacement, LoadError> {
    let mut file = File::open(path).map_err(|source| LoadError::OpenInitrd {
        path: path.into(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| LoadError::OpenInitrd {
            path: path.into(),
            source,
        })?
        .len();
    let top = low_ram_end(mem);
    let need = kernel_end.saturating_add(size).saturating_add(0x1000);
    if need > top {
        return Err(LoadError::TooSmall {
            what: "kernel and initrd",
            need_mib: mib_up(need),
            have_mib: top >> 20,
        });
    }
    let addr = (top - size) & !0xfff;
    let mut slice = mem
        .get_slice(GuestAddress(addr), size as usize)
        .map_err(|source| LoadError::ReadInitrd {
            path: path.into(),
            source,
        })?;
    file.read_exact_volatile(&mut slice)
        .map_err(|e| LoadError::ReadInitrd {
            path: path.into(),
            source: vm_memory::GuestMemoryError::from(e),
        })?;
    Ok(InitrdPlacement { addr, size })
}
