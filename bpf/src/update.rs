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
//!
//! When the loader put the headers in the array by inode number instead (`CFILES_BY_INO`, no
//! replacement room asked), an update copies the element in place: `Writer::publish`
//! publishes there in steps, each followed by a grace period.

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

/// Where the program finds the headers (the loader chooses, [`crate::tier`]).
enum Store {
    /// CFILES, a hash keyed by inode number: an update is one atomic publication.
    Hash(BpfHashMap<MapData, u64, abi::CFile>),
    /// CFILES_BY_INO, an array indexed by inode number: a lookup is cheaper, but an update
    /// copies the element in place, so a lookup running beside it could read half of each
    /// header. Headers are therefore published in steps ([`Writer::publish`]) and a file
    /// being replaced falls back (form 0) for a few grace periods.
    ByIno(aya::maps::Array<MapData, abi::CFile>),
}

/// The headers' map and what it holds (the loader's copy, so it never reads the map back).
struct Headers {
    store: Store,
    held: HashMap<u64, abi::CFile>,
    capacity: u32,
}

impl Headers {
    /// CFILES, or CFILES_BY_INO of `capacity` slots if `by_ino`.
    fn take(ebpf: &mut Ebpf, by_ino: bool, capacity: u32) -> Result<Self, BpfError> {
        let name = if by_ino { "CFILES_BY_INO" } else { "CFILES" };
        let map: Map = ebpf
            .take_map(name)
            .ok_or_else(|| BpfError::Object(format!("no map {name} in the object")))?;
        let bad = |e: aya::maps::MapError| BpfError::Object(format!("map {name}: {e}"));
        let store = if by_ino {
            Store::ByIno(aya::maps::Array::try_from(map).map_err(bad)?)
        } else {
            Store::Hash(BpfHashMap::try_from(map).map_err(bad)?)
        };
        Ok(Self {
            store,
            held: HashMap::new(),
            capacity,
        })
    }

    /// Whether `ino` can be put in without a free element (by inode: a slot).
    fn has_room_for(&self, ino: u64) -> bool {
        match self.store {
            Store::ByIno(_) => ino < u64::from(self.capacity),
            Store::Hash(_) => {
                self.held.contains_key(&ino) || self.held.len() < self.capacity as usize
            }
        }
    }

    /// Writes `value` as `ino`'s header in the map, one `bpf_map_update_elem` (by inode: a copy
    /// in place, not atomic).
    fn write(&mut self, ino: u64, value: abi::CFile) -> Result<(), BpfError> {
        let err = |e: aya::maps::MapError| BpfError::Update(format!("inode {ino}: {e}"));
        match &mut self.store {
            Store::Hash(m) => m.insert(ino, value, 0).map_err(err),
            Store::ByIno(m) => {
                let i = u32::try_from(ino)
                    .map_err(|_| BpfError::Update(format!("inode {ino}: past the array")))?;
                m.set(i, value, 0).map_err(err)
            }
        }
    }

    /// By inode: what `ino`'s slot holds with its form cleared (the program then finds no
    /// header), if its form is not 0 already.
    fn shown_cleared(&self, ino: u64) -> Option<abi::CFile> {
        let Store::ByIno(m) = &self.store else {
            return None;
        };
        let mut cur = m.get(&u32::try_from(ino).ok()?, 0).ok()?;
        (cur.form != 0).then(|| {
            cur.form = 0;
            cur
        })
    }

    /// Deletes `ino`'s header from the hash (by inode: the caller cleared its form).
    fn delete(&mut self, ino: u64) -> Result<Option<abi::CFile>, BpfError> {
        if !self.held.contains_key(&ino) {
            return Ok(None);
        }
        if let Store::Hash(m) = &mut self.store {
            m.remove(&ino)
                .map_err(|e| BpfError::Update(format!("deleting inode {ino}: {e}")))?;
        }
        Ok(self.held.remove(&ino))
    }
}

/// Everything that writes the maps after load; one at a time (the tier holds it in a mutex).
pub(crate) struct Writer {
    files: Headers,
    arrays: Arrays,
    space: Space,
    grace: GracePeriod,
    /// Forms unpublished since the last grace period: their slots are freed after the next.
    retired: Vec<Entry>,
    /// A hash-map update or delete has not been followed by a grace period yet.
    pending: bool,
}

impl Writer {
    /// Takes the headers' map (CFILES, or CFILES_BY_INO if `by_ino`, of `files` entries or
    /// slots) out of `ebpf` and maps the arrays.
    pub(crate) fn new(
        ebpf: &mut Ebpf,
        space: Space,
        files: u32,
        by_ino: bool,
    ) -> Result<Self, BpfError> {
        let grace = GracePeriod::new()
            .map_err(|e| BpfError::Update(format!("creating the grace-period map: {e}")))?;
        Ok(Self {
            arrays: Arrays::map(ebpf, &space)?,
            files: Headers::take(ebpf, by_ino, files)?,
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
            self.files.write(file.ino, *entry)?;
            self.files.held.insert(file.ino, *entry);
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
        let old = self.files.held.get(&file.ino).copied();
        if let Err(e) = self.publish(file.ino, entry) {
            self.space.release(&entry);
            return Err(e);
        }
        self.files.held.insert(file.ino, entry);
        self.mutated(old)?;
        Ok(Replaced::Loaded)
    }

    /// Makes `entry` what lookups of `ino` find (its form's slots written already). In the
    /// hash, one update: a lookup finds the old header or the new one. By inode, in steps with
    /// a grace period after each, so no lookup reads a slot while it is being copied into:
    /// clear the old header's form (lookups then fall back, NO_MODEL), write the new header
    /// with form 0, then write its form (a lookup that finds it started after the rest was
    /// written, and the grace period orders those writes before its reads). The caller waits
    /// for the grace period after the last step; the old form's slots are retired there.
    fn publish(&mut self, ino: u64, entry: Entry) -> Result<(), BpfError> {
        if matches!(self.files.store, Store::Hash(_)) {
            return self.files.write(ino, entry);
        }
        if let Some(cleared) = self.files.shown_cleared(ino) {
            self.files.write(ino, cleared)?;
            self.grace()?;
        }
        let hidden = Entry { form: 0, ..entry };
        self.files.write(ino, hidden)?;
        self.grace()?;
        self.files.write(ino, entry)
    }

    /// See [`crate::BpfTier::remove`].
    pub(crate) fn remove(&mut self, ino: u64) -> Result<bool, BpfError> {
        if self.pending {
            self.grace()?;
        }
        // By inode: clearing the form unpublishes the header (the other fields are left as
        // they were, so a lookup reading the slot meanwhile reads the old header whole).
        if let Some(cleared) = self.files.shown_cleared(ino) {
            self.files.write(ino, cleared)?;
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
        self.publish(ino, entry)?;
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
