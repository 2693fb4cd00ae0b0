//! A BPF array map seen as memory: `BPF_F_MMAPABLE` arrays can be mapped into the process, so
//! the loader writes a million extents with plain stores instead of a million `bpf()` calls
//! (~1.2 us each), and reads a batch's answers the same way.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use aya::maps::Map;
use aya::Ebpf;

use crate::BpfError;

/// Types an [`MmapArray`] holds.
///
/// # Safety
///
/// Implement only for `Copy` types of plain integers with no padding (`repr(C)`, sizes checked
/// against the program's layout), for which every bit pattern is a valid value: the kernel
/// writes these bytes.
pub(crate) unsafe trait Plain: Copy {}

// SAFETY: an integer.
unsafe impl Plain for u64 {}

/// `len` elements of type `T` shared with the kernel.
///
/// Elements are copied in and out with volatile accesses: the kernel writes the answers while
/// the program runs, between two of our accesses, and no reference into the mapping is ever
/// handed out.
pub(crate) struct MmapArray<T> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
    _t: PhantomData<T>,
}

// SAFETY: the mapping is plain shared memory owned by this value; accesses are bounds-checked
// copies of `Copy` data. Which thread may use which slots is the owner's protocol (the tier
// gives each batch its own region under a mutex); a race there garbles answers, which the
// tier then refuses, but cannot break memory safety.
unsafe impl<T: Plain> Send for MmapArray<T> {}
// SAFETY: as for Send: only copies through raw pointers, never references.
unsafe impl<T: Plain> Sync for MmapArray<T> {}

impl<T: Plain> MmapArray<T> {
    /// Maps the first `len` elements of the array map `fd`.
    ///
    /// The caller guarantees `fd` is a `BPF_F_MMAPABLE` array with at least `len` entries whose
    /// value size is `size_of::<T>()`; that size must be a multiple of 8 (the kernel's element
    /// stride), which is checked here.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        let size = std::mem::size_of::<T>();
        if size == 0 || size % 8 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "array element size is not a multiple of 8",
            ));
        }
        let bytes = size
            .checked_mul(len.max(1))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "map too large"))?;
        // SAFETY: a fresh shared mapping of the map's memory; the kernel checks the length
        // against the map's size and refuses a non-mmapable map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<T>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self {
            ptr,
            len,
            bytes,
            _t: PhantomData,
        })
    }

    /// Stores `v` at `i`; false if `i` is out of range.
    pub(crate) fn set(&self, i: usize, v: T) -> bool {
        if i >= self.len {
            return false;
        }
        // SAFETY: i < len, inside the mapping, and T's alignment (<= 8) divides the page-aligned
        // base plus a multiple of size_of::<T>().
        unsafe { self.ptr.as_ptr().add(i).write_volatile(v) };
        true
    }

    /// The element at `i`, if in range.
    pub(crate) fn get(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        // SAFETY: as in `set`; T: Plain, so every bit pattern is a valid T.
        Some(unsafe { self.ptr.as_ptr().add(i).read_volatile() })
    }
}

impl<T: Plain> MmapArray<T> {
    /// The bytes of element `i`, if in range (the tier's test hooks).
    pub(crate) fn get_bytes(&self, i: usize) -> Option<Vec<u8>> {
        let v = self.get(i)?;
        // SAFETY: T: Plain has no padding, so all size_of::<T>() bytes of v are initialised.
        let bytes = unsafe {
            std::slice::from_raw_parts((&v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        };
        Some(bytes.to_vec())
    }

    /// Stores `bytes` as element `i`; false if `i` is out of range or `bytes` is not one
    /// element long (the tier's test hooks).
    pub(crate) fn set_bytes(&self, i: usize, bytes: &[u8]) -> bool {
        let Some(mut v) = self.get(i) else {
            return false;
        };
        if bytes.len() != std::mem::size_of::<T>() {
            return false;
        }
        // SAFETY: T: Plain, so any bytes make a valid T; the copy stays inside v.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (&mut v as *mut T).cast::<u8>(),
                bytes.len(),
            )
        };
        self.set(i, v)
    }
}

impl<T> Drop for MmapArray<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; no reference into it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}

/// The fd of array map `name`.
fn array_fd<'e>(ebpf: &'e Ebpf, name: &'static str) -> Result<BorrowedFd<'e>, BpfError> {
    match ebpf.map(name) {
        Some(Map::Array(data)) => Ok(data.fd().as_fd()),
        _ => Err(BpfError::Object(format!(
            "no array map {name} in the object"
        ))),
    }
}

pub(crate) fn mmap<T: Plain>(
    ebpf: &Ebpf,
    name: &'static str,
    len: usize,
) -> Result<MmapArray<T>, BpfError> {
    MmapArray::new(array_fd(ebpf, name)?, len).map_err(|source| BpfError::Mmap { name, source })
}
