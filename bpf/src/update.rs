//! Replacing one file's form in the program's maps while lookups run.
//!
//! A file's form is its header (a CFILES entry) and the ranges of array slots the header
//! names. A replacement writes the new form into free slots, which no published header
//! names, then publishes the new header with one `bpf_map_update_elem`: a lookup finds the old
//! element or the new one (the hash table links the new element before it unlinks the old,
//! under the bucket lock, `htab_map_update_elem`), and whichever it finds names slots that hold
//! that form whole.
//!
//! What a lookup returns is a pointer into the hash table's element, which the program reads
//! while it searches; the kernel does not keep a replaced or deleted element for it. In a
//! preallocated hash (CFILES is) the replaced element becomes the CPU's spare
//! (`alloc_htab_elem` stores it in `htab->extra_elems`) and a deleted one goes straight back to
//! the free list (`free_htab_elem`): the next update rewrites it in place. `BPF_F_NO_PREALLOC`
//! would not help: its elements are freed into `bpf_mem_alloc`'s per-CPU free list
//! (`unit_free` in kernel/bpf/memalloc.c), which the next allocation takes from at once.
//! So the loader waits for an RCU grace period ([`GracePeriod`]) after every hash-map update
//! or delete, before it does anything else to the maps: when it returns, no program run that
//! could have found the old element is still running, so no one holds a pointer to it when a
//! later update recycles it, and no one reads the old form's slots, which are then free.

use std::collections::HashMap;

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use aya::Ebpf;

use crate::abi;
use crate::form::ARRAYS;
use crate::form::{check_file, entry_of, fill, ranges, set_first, Array, BpfFile, Entry, Skip};
use crate::grace::GracePeriod;
use crate::mmap::{MmapArray, Plain};
use crate::slots::Ranges;
use crate::BpfError;

/// The free slots of every array.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    arrays: [Ranges; ARRAYS],
}

impl Space {
    /// Arrays of the given capacities (in [`Array::ALL`] order), all free.
    pub(crate) fn new(capacity: [u32; ARRAYS]) -> Self {
        Self {
            arrays: capacity.map(Ranges::new),
        }
    }

    /// The same slots in use (the plan's, from slot 0) in arrays of `capacity` slots (each at
    /// least what is in use).
    pub(crate) fn resized(&self, capacity: [u32; ARRAYS]) -> Self {
        let mut out = Self::new(capacity);
        for a in Array::ALL {
            let used = u32::try_from(self.used(a)).unwrap_or(u32::MAX);
            // A fresh array gives its first `used` slots; the plan used exactly those.
            out.arrays[a.index()].alloc(used.min(capacity[a.index()]));
        }
        out
    }

    /// Slots of `array` in use.
    pub(crate) fn used(&self, array: Array) -> u64 {
        self.arrays[array.index()].used()
    }

    /// Capacity of `array`.
    pub(crate) fn capacity(&self, array: Array) -> u32 {
        self.arrays[array.index()].capacity()
    }

    /// `entry` with a free range in each of its arrays, or the array without room (then
    /// nothing is taken).
    pub(crate) fn place(&mut self, mut entry: Entry) -> Result<Entry, Array> {
        let mut taken: Vec<(Array, u32, u32)> = Vec::with_capacity(ARRAYS);
        for (array, _, n) in ranges(&entry) {
            match self.arrays[array.index()].alloc(n) {
                Some(first) => {
                    taken.push((array, first, n));
                    set_first(&mut entry, array, first);
                }
                None => {
                    for (a, first, n) in taken {
                        self.arrays[a.index()].free(first, n);
                    }
                    return Err(array);
                }
            }
        }
        Ok(entry)
    }

    /// Gives back the slots of a form that no program can read any more.
    pub(crate) fn release(&mut self, entry: &Entry) {
        for (array, first, n) in ranges(entry) {
            self.arrays[array.index()].free(first, n);
        }
    }
}

/// The data arrays, mapped into memory at their full capacity.
pub(crate) struct Arrays {
    pieces: MmapArray<abi::Piece>,
    cbuckets: MmapArray<abi::CBucket>,
    words: MmapArray<u64>,
}

fn mmap<T: Plain>(ebpf: &Ebpf, array: Array, space: &Space) -> Result<MmapArray<T>, BpfError> {
    crate::mmap::mmap(ebpf, array.name(), space.capacity(array) as usize)
}

impl Arrays {
    pub(crate) fn map(ebpf: &Ebpf, space: &Space) -> Result<Self, BpfError> {
        Ok(Self {
            pieces: mmap(ebpf, Array::Pieces, space)?,
            cbuckets: mmap(ebpf, Array::CBuckets, space)?,
            words: mmap(ebpf, Array::Words, space)?,
        })
    }

    /// Writes `file`'s form into the slots `entry` names.
    pub(crate) fn write(&self, file: &BpfFile<'_>, entry: &Entry) {
        fill(entry, file.index, &self.pieces, &self.cbuckets, &self.words);
    }
}

impl Arrays {
    /// The bytes of slot `i` of the array named `name` (test hook).
    pub(crate) fn slot_bytes(&self, name: &str, i: usize) -> Option<Vec<u8>> {
        match name {
            "PIECES" => self.pieces.get_bytes(i),
            "CBUCKETS" => self.cbuckets.get_bytes(i),
            "WORDS" => self.words.get_bytes(i),
            _ => None,
        }
    }

    /// Stores `bytes` in slot `i` of the array named `name`; false if there is no such slot or
    /// `bytes` is not one element long (test hook).
    pub(crate) fn set_slot_bytes(&self, name: &str, i: usize, bytes: &[u8]) -> bool {
        match name {
            "PIECES" => self.pieces.set_bytes(i, bytes),
            "CBUCKETS" => self.cbuckets.set_bytes(i, bytes),
            "WORDS" => self.words.set_bytes(i, bytes),
            _ => false,
        }
    }
}

/// What [`crate::BpfTier::replace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The new form is what every lookup starting from now finds.
    Loaded,
    /// The new form could not be loaded; the old one (if any) is gone too, since it describes
    /// a map that no longer is: the file's queries fall back.
    Skipped(Skip),
}

/// The file-hash handle and what it holds (the loader's copy, so it never reads the map back).
struct Headers<V: aya::Pod> {
    map: BpfHashMap<MapData, u64, V>,
    held: HashMap<u64, V>,
    capacity: u32,
}

impl<V: aya::Pod> Headers<V> {
    fn take(ebpf: &mut Ebpf, name: &'static str, capacity: u32) -> Result<Self, BpfError> {
        let map: Map = ebpf
            .take_map(name)
            .ok_or_else(|| BpfError::Object(format!("no map {name} in the object")))?;
        let map =
            BpfHashMap::try_from(map).map_err(|e| BpfError::Object(format!("map {name}: {e}")))?;
        Ok(Self {
            map,
            held: HashMap::new(),
            capacity,
        })
    }

    /// Whether `ino` can be put in without a free element.
    fn has_room_for(&self, ino: u64) -> bool {
        self.held.contains_key(&ino) || self.held.len() < self.capacity as usize
    }

    /// Inserts or replaces `ino`'s header: one `bpf_map_update_elem`. The replaced header.
    fn put(&mut self, ino: u64, value: V) -> Result<Option<V>, BpfError> {
        self.map
            .insert(ino, value, 0)
            .map_err(|e| BpfError::Update(format!("inode {ino}: {e}")))?;
        Ok(self.held.insert(ino, value))
    }

    /// Deletes `ino`'s header, if it has one: one `bpf_map_delete_elem`.
    fn delete(&mut self, ino: u64) -> Result<Option<V>, BpfError> {
        if !self.held.contains_key(&ino) {
            return Ok(None);
        }
        self.map
            .remove(&ino)
            .map_err(|e| BpfError::Update(format!("deleting inode {ino}: {e}")))?;
        Ok(self.held.remove(&ino))
    }
}

/// Everything that writes the maps after load; one at a time (the tier holds it in a mutex).
pub(crate) struct Writer {
    files: Headers<abi::CFile>,
    arrays: Arrays,
    space: Space,
    grace: GracePeriod,
    /// Forms unpublished since the last grace period: their slots are freed after the next.
    retired: Vec<Entry>,
    /// A hash-map update or delete has not been followed by a grace period yet.
    pending: bool,
}

impl Writer {
    /// Takes CFILES out of `ebpf` and maps the arrays.
    pub(crate) fn new(ebpf: &mut Ebpf, space: Space, files: u32) -> Result<Self, BpfError> {
        let grace = GracePeriod::new()
            .map_err(|e| BpfError::Update(format!("creating the grace-period map: {e}")))?;
        Ok(Self {
            arrays: Arrays::map(ebpf, &space)?,
            files: Headers::take(ebpf, "CFILES", files)?,
            space,
            grace,
            retired: Vec::new(),
            pending: false,
        })
    }

    /// Writes the forms the load planned (their slots already taken in `space`) and inserts
    /// their headers, before any program runs (no grace periods needed).
    pub(crate) fn fill(&mut self, planned: &[(BpfFile<'_>, Entry)]) -> Result<(), BpfError> {
        for (file, entry) in planned {
            self.arrays.write(file, entry);
        }
        for (file, entry) in planned {
            self.files.put(file.ino, *entry)?;
        }
        Ok(())
    }

    /// Waits for a grace period, then frees the retired forms' slots.
    fn grace(&mut self) -> Result<(), BpfError> {
        self.grace
            .wait()
            .map_err(|e| BpfError::Update(format!("waiting for an RCU grace period: {e}")))?;
        self.pending = false;
        for e in std::mem::take(&mut self.retired) {
            self.space.release(&e);
        }
        Ok(())
    }

    /// After a hash-map mutation that unpublished `old` (if any): the grace period that makes
    /// the next mutation, and the reuse of `old`'s slots, safe.
    fn mutated(&mut self, old: Option<Entry>) -> Result<(), BpfError> {
        self.pending = true;
        self.retired.extend(old);
        self.grace()
    }

    /// The new form's header with its slots taken, or why it cannot be loaded.
    fn prepare(&mut self, file: &BpfFile<'_>) -> Result<Entry, Skip> {
        let entry = entry_of(file, check_file(file)?)?;
        if !self.files.has_room_for(file.ino) {
            return Err(Skip::NoRoom("CFILES"));
        }
        self.space.place(entry).map_err(|a| Skip::NoRoom(a.name()))
    }

    /// See [`crate::BpfTier::replace`].
    pub(crate) fn replace(&mut self, file: &BpfFile<'_>) -> Result<Replaced, BpfError> {
        if self.pending {
            self.grace()?;
        }
        let entry = match self.prepare(file) {
            Ok(e) => e,
            Err(skip) => {
                self.remove(file.ino)?;
                return Ok(Replaced::Skipped(skip));
            }
        };
        self.arrays.write(file, &entry);
        // The slots are written before the header that names them is published (the update's
        // bucket lock and rcu_assign_pointer order the kernel's side).
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        // One update publishes the new form whatever the storage of either: a lookup finds the
        // old header or the new one.
        let old = match self.files.put(file.ino, entry) {
            Ok(old) => old,
            Err(e) => {
                self.space.release(&entry);
                return Err(e);
            }
        };
        self.mutated(old)?;
        Ok(Replaced::Loaded)
    }

    /// See [`crate::BpfTier::remove`].
    pub(crate) fn remove(&mut self, ino: u64) -> Result<bool, BpfError> {
        if self.pending {
            self.grace()?;
        }
        match self.files.delete(ino)? {
            Some(old) => self.mutated(Some(old)).map(|()| true),
            None => Ok(false),
        }
    }

    /// `ino`'s header as the loader published it (test hook).
    pub(crate) fn header(&self, ino: u64) -> Option<Entry> {
        self.files.held.get(&ino).copied()
    }

    /// Writes `entry` as `ino`'s header in the program's map, leaving the loader's copy as it
    /// was (test hook: writing [`Writer::header`] back restores it).
    pub(crate) fn poke_header(&mut self, ino: u64, entry: Entry) -> Result<(), BpfError> {
        if self.pending {
            self.grace()?;
        }
        if self.header(ino).is_none() {
            return Err(BpfError::Update(format!(
                "inode {ino}: no published header"
            )));
        }
        self.files
            .map
            .insert(ino, entry, 0)
            .map_err(|e| BpfError::Update(format!("inode {ino}: {e}")))?;
        self.mutated(None)
    }

    /// The data arrays (test hooks).
    pub(crate) fn arrays(&self) -> &Arrays {
        &self.arrays
    }

    /// Slots in use and capacity, per array (in [`Array::ALL`] order).
    pub(crate) fn room(&self) -> Vec<(&'static str, u64, u32)> {
        Array::ALL
            .iter()
            .map(|&a| (a.name(), self.space.used(a), self.space.capacity(a)))
            .collect()
    }
}
