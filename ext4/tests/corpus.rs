//! The e2fsprogs regression images (`testdata/e2fsprogs/*.img.gz`), many deliberately
//! corrupt, read fully: superblock, every in-use inode, every extent tree, directory and
//! symlink, and a walk from the root. Each image must end in `Ok` or errors that name what is
//! wrong; never a panic, a hang (a watchdog per image) or an allocation out of proportion to
//! the image (a counting allocator measures the peak). Which images must read cleanly and
//! which must fail, with which first error, is asserted per image (`EXPECTED_ERRORS`).

use std::alloc::{GlobalAlloc, Layout, System};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ext4::{Error, Fs, InodeKind, MemSource};

/// Tracks live and peak heap bytes of the whole test binary.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What reading one image found.
#[derive(Default)]
struct Outcome {
    inodes: usize,
    files: usize,
    extents: usize,
    dirs: usize,
    entries: usize,
    symlinks: usize,
    walked: usize,
    errors: Vec<String>,
}

/// Reads everything the image has; errors are collected, panics are not caught.
fn read_fully(image: Vec<u8>) -> Result<Outcome, Error> {
    let fs = Fs::open(MemSource(image))?;
    let mut out = Outcome::default();
    let (used, errors) = fs.used_inodes();
    out.errors.extend(errors.iter().map(ToString::to_string));
    for ino in used {
        let inode = match fs.inode(ino) {
            Ok(i) => i,
            Err(e) => {
                out.errors.push(e.to_string());
                continue;
            }
        };
        out.inodes += 1;
        let r = match inode.kind {
            InodeKind::File => fs.extents(&inode).map(|e| {
                out.files += 1;
                out.extents += e.len();
            }),
            InodeKind::Dir => fs.read_dir(&inode).map(|e| {
                out.dirs += 1;
                out.entries += e.len();
            }),
            InodeKind::Symlink => fs.read_link(&inode).map(|_| out.symlinks += 1),
            _ => Ok(()),
        };
        if let Err(e) = r {
            // Errors about an inode must say which.
            assert!(
                e.ino() == Some(ino) || !matches!(e, Error::Corrupt { .. }),
                "error about inode {ino} names another: {e}"
            );
            out.errors.push(e.to_string());
        }
    }
    let (walked, errors) = fs.walk();
    out.walked = walked.len();
    out.errors.extend(errors.iter().map(ToString::to_string));
    Ok(out)
}

/// The images that must not read cleanly, with what the first error must say (the damage
/// upstream's `expect.1` describes, as our reader names it). Every other image must read with
/// no error at all, so a reader that refused everything, or accepted damage, fails here.
const EXPECTED_ERRORS: &[(&str, &str)] = &[
    (
        "f_baddir",
        "inode 12: directory block 0, byte 0: record length 8234",
    ),
    (
        "f_baddir2",
        "inode 12: directory block 0, byte 60: record length 23236",
    ),
    ("f_badsymlinks", "inode 12: symlink: target length 0"),
    ("f_badsymlinks2", "inode 22: symlink: target length 4096"),
    (
        "f_ext_zero_len",
        "inode 12: extent node at block 0, entry 0: zero length",
    ),
    (
        "f_extent_bad_node",
        "inode 12: extent node at block 22: bad magic",
    ),
    (
        "f_extent_int_bad_csum",
        "inode 12: extent block 1295: checksum mismatch",
    ),
    (
        "f_extent_int_bad_extent",
        "inode 12: extent block 1295: checksum mismatch",
    ),
    (
        "f_extent_int_bad_magic",
        "inode 12: extent node at block 1295: bad magic",
    ),
    (
        "f_extent_leaf_bad_csum",
        "inode 12: extent block 1604: checksum mismatch",
    ),
    (
        "f_extent_leaf_bad_extent",
        "inode 12: extent block 1604: checksum mismatch",
    ),
    (
        "f_extent_leaf_bad_magic",
        "inode 12: extent node at block 1604: bad magic",
    ),
    (
        "f_extent_too_deep",
        "inode 12: extent node at block 0: depth 7 over 5",
    ),
    (
        "f_extents",
        "inode 13: block map: block 0 at 127754, outside the filesystem",
    ),
    (
        "f_extents2",
        "inode 12: extent node at block 0, entry 1: logical blocks 0..12 out of order",
    ),
    (
        "f_holedir",
        "inode 11: block map: block 6 at 200, outside the filesystem",
    ),
    (
        "f_htree_bad_csum",
        "inode 24: directory block 0, byte 1020: 4 trailing bytes",
    ),
    (
        "f_inlinedata_dirblocks",
        "inode 12: directory block 0, byte 0: record length 27753",
    ),
    (
        "f_inlinedata_repair",
        "inode 12: inline data: size 80 but only 60 inline bytes",
    ),
    (
        "f_invalid_extent_symlink",
        "inode 12: symlink: target of 1098 bytes is over one block",
    ),
    (
        "f_write_ea_toobig_extra_isize",
        "inode 12: bad inode field: i_extra_isize 126",
    ),
    (
        "f_zeroed_ext_header",
        "inode 12: extent node at block 0: bad magic 0x0000",
    ),
    (
        "j_ext_dumpe2fs",
        "unsupported incompatible feature(s): journal_dev",
    ),
];

#[test]
fn every_corpus_image_reads_or_errors_cleanly() {
    let images = testimg::corpus::images().unwrap_or_else(|e| {
        panic!(
            "corpus not found at {} (set IOMAP_CORPUS to the folder of *.img.gz): {e}",
            testimg::corpus::dir().display()
        )
    });
    assert!(images.len() >= 50, "only {} corpus images", images.len());

    let mut report = String::new();
    let (mut ok, mut clean_errors) = (0, 0);
    for (stem, path) in &images {
        let name = format!("{stem}.img.gz");
        let bytes = testimg::corpus::read(path).unwrap_or_else(|e| panic!("{e}"));
        let size = bytes.len();

        // A watchdog: the image must be read within a bound, or the test fails (not hangs).
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            let _ = tx.send(read_fully(bytes));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{name}: not read within 60 s (hang?) or panicked"));
        worker.join().expect("reader thread");
        // The image itself is in memory (size bytes); what reading it adds must stay in
        // proportion to it.
        let extra = PEAK.load(Ordering::Relaxed).saturating_sub(base + size);
        assert!(
            extra <= (size * 2).max(16 << 20),
            "{name}: reading a {size}-byte image allocated {extra} bytes more"
        );

        let first_error = match &result {
            Ok(o) => o.errors.first().cloned(),
            Err(e) => Some(e.to_string()),
        };
        let line = match result {
            Ok(o) if o.errors.is_empty() => {
                ok += 1;
                format!(
                    "OK    {name}: {} inodes, {} files / {} extents, {} dirs / {} entries, {} symlinks, {} walked",
                    o.inodes, o.files, o.extents, o.dirs, o.entries, o.symlinks, o.walked
                )
            }
            Ok(o) => {
                clean_errors += 1;
                let mut first: Vec<_> = o.errors.iter().take(3).cloned().collect();
                if o.errors.len() > 3 {
                    first.push(format!("... {} more", o.errors.len() - 3));
                }
                format!(
                    "ERR   {name}: {} errors: {}",
                    o.errors.len(),
                    first.join("; ")
                )
            }
            Err(e) => {
                clean_errors += 1;
                format!("REFUSED {name}: {e}")
            }
        };
        // The outcome this image must have.
        match (
            EXPECTED_ERRORS.iter().find(|(n, _)| n == stem),
            &first_error,
        ) {
            (Some((_, says)), Some(first)) => assert!(
                first.starts_with(says),
                "{stem}: expected an error starting {says:?}, got: {first}"
            ),
            (Some((_, says)), None) => {
                panic!("{stem}: expected an error starting {says:?}, but it read cleanly")
            }
            (None, Some(first)) => panic!("{stem}: expected to read cleanly, got: {first}"),
            (None, None) => {}
        }
        report.push_str(&line);
        report.push('\n');
    }
    println!("{report}");
    println!("{ok} images read without error, {clean_errors} with clean errors");
    assert_eq!(
        clean_errors,
        EXPECTED_ERRORS.len(),
        "every expected error must be an image of the corpus"
    );
    if let Ok(out) = std::env::var("IOMAP_CORPUS_REPORT") {
        std::fs::write(out, &report).expect("write corpus report");
    }
}
