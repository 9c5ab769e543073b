//! Loading a kernel (ELF64 vmlinux-style, or bzImage) and an initrd into guest memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::bzimage::{BzImage, Error as BzError};
use linux_loader::loader::elf::Elf;
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
    /// The path names a directory.
    #[error("{0} is a directory, not a kernel file; give the path of a vmlinux-style ELF or a bzImage to --kernel")]
    IsDirectory(PathBuf),
    /// The kernel file ends before the data its headers describe.
    #[error("{path}: truncated or damaged kernel image ({detail}); copy or rebuild the kernel and check its size against the original")]
    Truncated {
        /// The path given.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// A well-formed ELF file that is not a bootable kernel (a program, library, or other arch).
    #[error("{path} is an ELF file but not a vmlinux-style kernel ({detail}); give a kernel's vmlinux (ELF64 x86-64 executable linked at 1 MiB or above) or a bzImage (e.g. /boot/vmlinuz-*)")]
    NotAKernelElf {
        /// The path given.
        path: PathBuf,
        /// Why it is not a kernel.
        detail: String,
    },
    /// An ELF kernel that linux-loader refused.
    #[error("{path}: invalid ELF kernel: {source}; the file may be damaged: give a vmlinux-style ELF or a bzImage")]
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

/// ELF identification and header constants used to classify a kernel file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELF_HEADER_SIZE: usize = 64;
const ELF_PHDR_SIZE: u64 = 56;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Read up to `buf.len()` bytes from the start of `file`; returns how many were read.
fn read_prefix(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Why an ELF file cannot be booted, found from its headers before anything is loaded.
enum ElfProblem {
    Truncated(String),
    NotAKernel(String),
    /// Guest memory up to this address is needed.
    TooSmall(u64),
}

/// Check an ELF file's headers: complete, x86-64 executable, entry at or above 1 MiB, and
/// loadable segments that fit below `have`. `hdr` is the 64-byte ELF header.
fn check_elf(file: &mut File, hdr: &[u8], len: u64, have: u64) -> Result<(), ElfProblem> {
    if hdr[4] != ELFCLASS64 || hdr[5] != ELFDATA2LSB {
        return Err(ElfProblem::NotAKernel(
            "a 32-bit or big-endian ELF; vnetbed boots 64-bit little-endian x86 kernels".into(),
        ));
    }
    let phoff = le_u64(hdr, 32);
    let phentsize = u64::from(le_u16(hdr, 54));
    let phnum = u64::from(le_u16(hdr, 56));
    if phentsize != ELF_PHDR_SIZE {
        return Err(ElfProblem::NotAKernel(format!(
            "program header entries are {phentsize} bytes, not {ELF_PHDR_SIZE}"
        )));
    }
    let table_end = phoff
        .checked_add(phnum * ELF_PHDR_SIZE)
        .ok_or_else(|| ElfProblem::Truncated("program header offset overflows".into()))?;
    if table_end > len {
        return Err(ElfProblem::Truncated(format!(
            "the program headers end at byte {table_end} but the file has {len} bytes"
        )));
    }
    let mut phdrs = vec![0u8; (phnum * ELF_PHDR_SIZE) as usize];
    file.seek(SeekFrom::Start(phoff))
        .and_then(|_| file.read_exact(&mut phdrs))
        .map_err(|e| ElfProblem::Truncated(format!("cannot read the program headers: {e}")))?;
    let mut need = 0u64;
    for ph in phdrs.chunks_exact(ELF_PHDR_SIZE as usize) {
        let (p_type, offset, paddr) = (le_u32(ph, 0), le_u64(ph, 8), le_u64(ph, 24));
        let (filesz, memsz) = (le_u64(ph, 32), le_u64(ph, 40));
        if p_type != PT_LOAD || filesz == 0 {
            continue;
        }
        match offset.checked_add(filesz) {
            Some(end) if end <= len => {}
            _ => {
                return Err(ElfProblem::Truncated(format!(
                    "a loadable segment ends at byte {} but the file has {len} bytes",
                    offset.saturating_add(filesz)
                )))
            }
        }
        need = need.max(paddr.saturating_add(memsz.max(filesz)));
    }
    let e_type = le_u16(hdr, 16);
    let machine = le_u16(hdr, 18);
    let entry = le_u64(hdr, 24);
    if machine != EM_X86_64 {
        return Err(ElfProblem::NotAKernel(format!(
            "built for ELF machine {machine}, not x86-64"
        )));
    }
    if e_type != ET_EXEC {
        let what = match e_type {
            ET_DYN => "ET_DYN: a position-independent program or shared library".to_string(),
            t => format!("ELF type {t}, not an executable (ET_EXEC)"),
        };
        return Err(ElfProblem::NotAKernel(what));
    }
    if entry < HIMEM_START {
        return Err(ElfProblem::NotAKernel(format!(
            "its entry point {entry:#x} is below 1 MiB"
        )));
    }
    if need > have {
        return Err(ElfProblem::TooSmall(need));
    }
    Ok(())
}

/// Load `path` into `mem`: an ELF64 x86-64 executable (vmlinux-style), else a bzImage.
pub fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, LoadError> {
    let open_err = |source| LoadError::OpenKernel {
        path: path.into(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if meta.is_dir() {
        return Err(LoadError::IsDirectory(path.into()));
    }
    let len = meta.len();
    let mut file = File::open(path).map_err(open_err)?;
    let have = low_ram_end(mem);
    let too_small = |need: u64| LoadError::TooSmall {
        what: "kernel",
        need_mib: mib_up(need),
        have_mib: have >> 20,
    };
    let truncated = |detail: String| LoadError::Truncated {
        path: path.into(),
        detail,
    };
    let mut hdr = [0u8; ELF_HEADER_SIZE];
    let got = read_prefix(&mut file, &mut hdr).map_err(open_err)?;
    if got == 0 {
        return Err(LoadError::UnknownFormat {
            path: path.into(),
            detail: "the file is empty".into(),
        });
    }
    if got >= ELF_MAGIC.len() && &hdr[..4] == ELF_MAGIC {
        if got < ELF_HEADER_SIZE {
            return Err(truncated(format!(
                "the ELF header needs {ELF_HEADER_SIZE} bytes but the file has {got}"
            )));
        }
        match check_elf(&mut file, &hdr, len, have) {
            Ok(()) => {}
            Err(ElfProblem::Truncated(d)) => return Err(truncated(d)),
            Err(ElfProblem::TooSmall(need)) => return Err(too_small(need)),
            Err(ElfProblem::NotAKernel(detail)) => {
                return Err(LoadError::NotAKernelElf {
                    path: path.into(),
                    detail,
                })
            }
        }
        let r =
            Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))).map_err(|source| {
                LoadError::BadElf {
                    path: path.into(),
                    source,
                }
            })?;
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
    match BzImage::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))) {
        Ok(r) => {
            let hdr = r.setup_header.unwrap_or_default();
            // The protected-mode kernel is `syssize` 16-byte paragraphs after the setup sectors.
            let setup_sects = if hdr.setup_sects == 0 {
                4
            } else {
                u64::from(hdr.setup_sects)
            };
            let expected = (setup_sects + 1) * 512 + u64::from(hdr.syssize) * 16;
            if len < expected {
                return Err(truncated(format!(
                    "the bzImage header describes {expected} bytes but the file has {len}"
                )));
            }
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
        // The compressed kernel is read whole from the file, so this failure is guest memory.
        Err(LoaderError::Bzimage(BzError::ReadBzImageCompressedKernel)) => {
            Err(too_small(len.saturating_add(HIMEM_START)))
        }
        // The file is shorter than its own setup sectors.
        Err(LoaderError::Bzimage(BzError::Underflow)) => Err(truncated(format!(
            "the file ({len} bytes) ends inside the bzImage setup sectors"
        ))),
        Err(e) => Err(LoadError::UnknownFormat {
            path: path.into(),
            detail: format!("not ELF; not a bzImage: {e}"),
        }),
    }
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
