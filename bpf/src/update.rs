//! Replacing one file's form in the program's maps while lookups run.
//!
//! A file's form is its header (a FILES or CFILES entry) and the ranges of array slots the
//! header names. A replacement writes the new form into free slots, which no published header
//! names, then publishes the new header with one `bpf_map_update_elem`: a lookup finds the old
//! element or the new one (the hash table links the new element before it unlinks the old,
//! under the bucket lock, `htab_map_update_elem`), and whichever it finds names slots that hold
//! that form whole.
//!
//! What a lookup returns is a pointer into the hash table's element, which the program reads
//! while it searches; the kernel does not keep a replaced or deleted element for it. In a
//! preallocated hash (FILES and CFILES are) the replaced element becomes the CPU's spare
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
use crate::form::{
    check_file, entry_of, fill_compact, fill_learned, Array, BpfFile, BpfIndex, Entry, Skip,
};
use crate::grace::GracePeriod;
use crate::mmap::{MmapArray, Plain};
use crate::slots::Ranges;
use crate::BpfError;

/// The free slots of every array.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    arrays: [Ranges; 6],
}

impl Space {
    /// Arrays of the given capacities (in [`Array::ALL`] order), all free.
    pub(crate) fn new(capacity: [u32; 6]) -> Self {
        Self {
            arrays: capacity.map(Ranges::new),
        }
    }

    /// The same slots in use (the plan's, from slot 0) in arrays of `capacity` slots (each at
    /// least what is in use).
    pub(crate) fn resized(&self, capacity: [u32; 6]) -> Self {
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
        let mut taken: Vec<(Array, u32, u32)> = Vec::with_capacity(3);
        for (array, _, n) in entry.ranges() {
            match self.arrays[array.index()].alloc(n) {
                Some(first) => {
                    taken.push((array, first, n));
                    entry.set_first(array, first);
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
        for (array, first, n) in entry.ranges() {
            self.arrays[array.index()].free(first, n);
        }
    }
}

/// The data arrays, mapped into memory at their full capacity.
pub(crate) struct Arrays {
    exts: MmapArray<abi::Extent>,
    segs: MmapArray<abi::Seg>,
    radix: MmapArray<abi::Bucket>,
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
            exts: mmap(ebpf, Array::Extents, space)?,
            segs: mmap(ebpf, Array::Segs, space)?,
            radix: mmap(ebpf, Array::Radix, space)?,
            pieces: mmap(ebpf, Array::Pieces, space)?,
            cbuckets: mmap(ebpf, Array::CBuckets, space)?,
            words: mmap(ebpf, Array::Words, space)?,
        })
    }

    /// Writes `file`'s form into the slots `entry` names.
    pub(crate) fn write(&self, file: &BpfFile<'_>, entry: &Entry) -> Result<(), BpfError> {
        match (entry, file.index) {
            (Entry::Learned(e), BpfIndex::Learned(ix)) => {
                fill_learned(e, ix, &self.exts, &self.radix, &self.segs)
            }
            (Entry::Compact(e), BpfIndex::Compact(c)) => {
                fill_compact(e, c, &self.pieces, &self.cbuckets, &self.words)
            }
            _ => return Err(BpfError::Object("planned entry of the wrong form".into())),
        }
        Ok(())
    }
}

impl Arrays {
    /// The bytes of slot `i` of the array named `name` (test hook).
    pub(crate) fn slot_bytes(&self, name: &str, i: usize) -> Option<Vec<u8>> {
        match name {
            "EXTENTS" => self.exts.get_bytes(i),
            "SEGS" => self.segs.get_bytes(i),
            "RADIX" => self.radix.get_bytes(i),
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
            "EXTENTS" => self.exts.set_bytes(i, bytes),
            "SEGS" => self.segs.set_bytes(i, bytes),
            "RADIX" => self.radix.set_bytes(i, bytes),
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
    files: Headers<abi::File>,
    cfiles: Headers<abi::CFile>,
    arrays: Arrays,
    space: Space,
    /// `abi::LAYOUT_*` bits the program was loaded with.
    layouts: u32,
    grace: GracePeriod,
    /// Forms unpublished since the last grace period: their slots are freed after the next.
    retired: Vec<Entry>,
    /// A hash-map update or delete has not been followed by a grace period yet.
    pending: bool,
}

impl Writer {
    /// Takes FILES and CFILES out of `ebpf` and maps the arrays.
    pub(crate) fn new(
        ebpf: &mut Ebpf,
        space: Space,
        hash_capacity: (u32, u32),
        layouts: u32,
    ) -> Result<Self, BpfError> {
        let grace = GracePeriod::new()
            .map_err(|e| BpfError::Update(format!("creating the grace-period map: {e}")))?;
        Ok(Self {
            arrays: Arrays::map(ebpf, &space)?,
            files: Headers::take(ebpf, "FILES", hash_capacity.0)?,
            cfiles: Headers::take(ebpf, "CFILES", hash_capacity.1)?,
            space,
            layouts,
            grace,
            retired: Vec::new(),
            pending: false,
        })
    }

    /// Writes the forms the load planned (their slots already taken in `space`) and inserts
    /// their headers, before any program runs (no grace periods needed).
    pub(crate) fn fill(&mut self, planned: &[(BpfFile<'_>, Entry)]) -> Result<(), BpfError> {
        for (file, entry) in planned {
            self.arrays.write(file, entry)?;
        }
        for (file, entry) in planned {
            match *entry {
                Entry::Learned(e) => self.files.put(file.ino, e).map(drop)?,
                Entry::Compact(e) => self.cfiles.put(file.ino, e).map(drop)?,
            }
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
        let (bit, room, name) = match entry {
            Entry::Learned(_) => (
                abi::LAYOUT_LEARNED,
                self.files.has_room_for(file.ino),
                "FILES",
            ),
            Entry::Compact(_) => (
                abi::LAYOUT_COMPACT,
                self.cfiles.has_room_for(file.ino),
                "CFILES",
            ),
        };
        if self.layouts & bit == 0 {
            return Err(Skip::Layout(name));
        }
        if !room {
            return Err(Skip::NoRoom(name));
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
        if let Err(e) = self.arrays.write(file, &entry) {
            self.space.release(&entry);
            return Err(e);
        }
        // The slots are written before the header that names them is published (the update's
        // bucket lock and rcu_assign_pointer order the kernel's side).
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let ino = file.ino;
        // Publish in the new layout; then, if the file was in the other one, delete it there.
        // The program looks FILES up first, so in between it finds: learned -> compact, the old
        // learned header; compact -> learned, the new one (and the grace period between the
        // two steps lets no lookup miss FILES before and CFILES after).
        let put = match entry {
            Entry::Learned(e) => self.files.put(ino, e).map(|o| o.map(Entry::Learned)),
            Entry::Compact(e) => self.cfiles.put(ino, e).map(|o| o.map(Entry::Compact)),
        };
        let old = match put {
            Ok(old) => old,
            Err(e) => {
                self.space.release(&entry);
                return Err(e);
            }
        };
        self.mutated(old)?;
        match entry {
            Entry::Learned(_) => self.delete_compact(ino)?,
            Entry::Compact(_) => self.delete_learned(ino)?,
        };
        Ok(Replaced::Loaded)
    }

    fn delete_learned(&mut self, ino: u64) -> Result<bool, BpfError> {
        match self.files.delete(ino)? {
            Some(old) => self.mutated(Some(Entry::Learned(old))).map(|()| true),
            None => Ok(false),
        }
    }

    fn delete_compact(&mut self, ino: u64) -> Result<bool, BpfError> {
        match self.cfiles.delete(ino)? {
            Some(old) => self.mutated(Some(Entry::Compact(old))).map(|()| true),
            None => Ok(false),
        }
    }

    /// See [`crate::BpfTier::remove`].
    pub(crate) fn remove(&mut self, ino: u64) -> Result<bool, BpfError> {
        if self.pending {
            self.grace()?;
        }
        let learned = self.delete_learned(ino)?;
        let compact = self.delete_compact(ino)?;
        Ok(learned || compact)
    }

    /// `ino`'s header as the loader published it (test hook).
    pub(crate) fn header(&self, ino: u64) -> Option<Entry> {
        self.files
            .held
            .get(&ino)
            .map(|f| Entry::Learned(*f))
            .or_else(|| self.cfiles.held.get(&ino).map(|c| Entry::Compact(*c)))
    }

    /// Writes `entry` as `ino`'s header in the program's map of the layout `ino` is published
    /// in, leaving the loader's copy as it was (test hook: writing [`Writer::header`] back
    /// restores it).
    pub(crate) fn poke_header(&mut self, ino: u64, entry: Entry) -> Result<(), BpfError> {
        if self.pending {
            self.grace()?;
        }
        let r = match (self.header(ino), entry) {
            (Some(Entry::Learned(_)), Entry::Learned(f)) => self.files.map.insert(ino, f, 0),
            (Some(Entry::Compact(_)), Entry::Compact(c)) => self.cfiles.map.insert(ino, c, 0),
            _ => {
                return Err(BpfError::Update(format!(
                    "inode {ino}: no published header of that layout"
                )))
            }
        };
        r.map_err(|e| BpfError::Update(format!("inode {ino}: {e}")))?;
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
