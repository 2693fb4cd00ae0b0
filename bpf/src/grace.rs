//! An RCU grace period on demand, from userspace: an update of a map-in-map.
//!
//! The program runs inside an RCU read-side critical section (a `BPF_PROG_TEST_RUN` holds
//! `rcu_read_lock` around each run, as the trampoline of a non-sleepable struct_ops program
//! does), and holds what `bpf_map_lookup_elem` returned only within it. After an update of a
//! `BPF_MAP_TYPE_ARRAY_OF_MAPS` or `HASH_OF_MAPS` map, the `bpf(BPF_MAP_UPDATE_ELEM)` syscall
//! calls `maybe_wait_bpf_programs()` (kernel/bpf/syscall.c), which waits with
//! `synchronize_rcu()` "for any running non-sleepable BPF programs to complete" before it
//! returns. So when [`GracePeriod::wait`] returns, every program run that started before the
//! call has ended, and with it every pointer it got from a lookup.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `BPF_MAP_CREATE`, `BPF_MAP_UPDATE_ELEM` (`enum bpf_cmd`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
/// `BPF_MAP_TYPE_ARRAY`, `BPF_MAP_TYPE_ARRAY_OF_MAPS` (`enum bpf_map_type`).
const MAP_TYPE_ARRAY: u32 = 2;
const MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The `BPF_MAP_CREATE` prefix of `union bpf_attr` (the kernel takes the rest as zero).
#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// The `BPF_MAP_*_ELEM` member of `union bpf_attr`.
#[repr(C)]
struct MapElem {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf(cmd, attr, size_of::<T>())`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `repr(C)` prefix of `union bpf_attr` for `cmd`, and
    // the size passed is its size; the kernel copies that many bytes in and zero-fills the
    // rest. The pointers inside it (MapElem's key and value) point at live locals of the caller.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn create(mut attr: MapCreate, name: &str) -> io::Result<OwnedFd> {
    let n = name.len().min(attr.map_name.len() - 1);
    attr.map_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("map fd out of range"))?;
    // SAFETY: BPF_MAP_CREATE returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A one-slot array of maps and the map it holds: updating the slot waits for a grace period.
#[derive(Debug)]
pub(crate) struct GracePeriod {
    outer: OwnedFd,
    inner: OwnedFd,
}

impl GracePeriod {
    /// Creates the two maps.
    pub(crate) fn new() -> io::Result<Self> {
        let inner = create(
            MapCreate {
                map_type: MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                ..MapCreate::default()
            },
            "iomap_grace_in",
        )?;
        let outer = create(
            MapCreate {
                map_type: MAP_TYPE_ARRAY_OF_MAPS,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                inner_map_fd: inner.as_raw_fd() as u32,
                ..MapCreate::default()
            },
            "iomap_grace",
        )?;
        Ok(Self { outer, inner })
    }

    /// Returns once every BPF program run that started before the call has ended.
    pub(crate) fn wait(&self) -> io::Result<()> {
        let key = 0u32;
        let value = self.inner.as_raw_fd() as u32;
        let mut attr = MapElem {
            map_fd: self.outer.as_raw_fd() as u32,
            pad: 0,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0, // BPF_ANY
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }
}
