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

use ext4::CorruptKind::*;
use ext4::{Error, Fs, IncompatFeatures, InodeKind, MemSource};

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
    errors: Vec<Error>,
}

/// Reads everything the image has; errors are collected, panics are not caught.
fn read_fully(image: Vec<u8>) -> Result<Outcome, Error> {
    let fs = Fs::open(MemSource(image))?;
    let mut out = Outcome::default();
    let (used, errors) = fs.used_inodes();
    out.errors.extend(errors);
    for ino in used {
        let inode = match fs.inode(ino) {
            Ok(i) => i,
            Err(e) => {
                out.errors.push(e);
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
            out.errors.push(e);
        }
    }
    let (walked, errors) = fs.walk();
    out.walked = walked.len();
    out.errors.extend(errors);
    Ok(out)
}

/// What the first error of an image must be.
type Expect = fn(&Error) -> bool;

/// An [`Expect`]: corruption of inode `$ino`, of the kind `$kind` matches.
macro_rules! corrupt {
    ($ino:literal, $kind:pat) => {
        |e: &Error| {
            matches!(
                e,
                Error::Corrupt {
                    ino: $ino,
                    kind: $kind
                }
            )
        }
    };
}

/// The images that must not read cleanly, with what the first error must be (the damage
/// upstream's `expect.1` describes, as our reader names it). Every other image must read with
/// no error at all, so a reader that refused everything, or accepted damage, fails here.
const EXPECTED_ERRORS: &[(&str, Expect)] = &[
    (
        "f_baddir",
        corrupt!(
            12,
            DirentRecLen {
                lblk: 0,
                offset: 0,
                rec_len: 8234
            }
        ),
    ),
    (
        "f_baddir2",
        corrupt!(
            12,
            DirentRecLen {
                lblk: 0,
                offset: 60,
                rec_len: 23236
            }
        ),
    ),
    ("f_badsymlinks", corrupt!(12, SymlinkLength { len: 0 })),
    ("f_badsymlinks2", corrupt!(22, SymlinkLength { len: 4096 })),
    (
        "f_ext_zero_len",
        corrupt!(12, ExtentZeroLength { block: 0, entry: 0 }),
    ),
    (
        "f_extent_bad_node",
        corrupt!(12, ExtentMagic { block: 22, .. }),
    ),
    (
        "f_extent_int_bad_csum",
        corrupt!(12, ExtentChecksum { block: 1295, .. }),
    ),
    (
        "f_extent_int_bad_extent",
        corrupt!(12, ExtentChecksum { block: 1295, .. }),
    ),
    (
        "f_extent_int_bad_magic",
        corrupt!(12, ExtentMagic { block: 1295, .. }),
    ),
    (
        "f_extent_leaf_bad_csum",
        corrupt!(12, ExtentChecksum { block: 1604, .. }),
    ),
    (
        "f_extent_leaf_bad_extent",
        corrupt!(12, ExtentChecksum { block: 1604, .. }),
    ),
    (
        "f_extent_leaf_bad_magic",
        corrupt!(12, ExtentMagic { block: 1604, .. }),
    ),
    (
        "f_extent_too_deep",
        corrupt!(12, ExtentTooDeep { block: 0, depth: 7 }),
    ),
    (
        "f_extents",
        corrupt!(
            13,
            MapBlockOutsideFs {
                lblk: 0,
                pblk: 127754
            }
        ),
    ),
    (
        "f_extents2",
        corrupt!(
            12,
            ExtentOutOfOrder {
                block: 0,
                entry: 1,
                lblk: 0,
                end: 12,
                ..
            }
        ),
    ),
    (
        "f_holedir",
        corrupt!(11, MapBlockOutsideFs { lblk: 6, pblk: 200 }),
    ),
    (
        "f_htree_bad_csum",
        corrupt!(
            24,
            DirentTrailing {
                lblk: 0,
                offset: 1020,
                len: 4
            }
        ),
    ),
    (
        "f_inlinedata_dirblocks",
        corrupt!(
            12,
            DirentRecLen {
                lblk: 0,
                offset: 0,
                rec_len: 27753
            }
        ),
    ),
    (
        "f_inlinedata_repair",
        corrupt!(
            12,
            InlineDataSize {
                size: 80,
                avail: 60
            }
        ),
    ),
    (
        "f_invalid_extent_symlink",
        corrupt!(12, SymlinkOverBlock { len: 1098 }),
    ),
    (
        "f_write_ea_toobig_extra_isize",
        corrupt!(12, ExtraIsize { extra_isize: 126 }),
    ),
    (
        "f_zeroed_ext_header",
        corrupt!(12, ExtentMagic { block: 0, magic: 0 }),
    ),
    (
        "j_ext_dumpe2fs",
        |e| matches!(e, Error::Unsupported(f) if f.contains(IncompatFeatures::JOURNAL_DEV)),
    ),
];

#[test]
fn every_corpus_image_reads_or_errors_cleanly() {
    let images = imagekit::corpus::images().unwrap_or_else(|e| {
        panic!(
            "corpus not found at {} (set IOMAP_CORPUS to the folder of *.img.gz): {e}",
            imagekit::corpus::dir().display()
        )
    });
    assert!(images.len() >= 50, "only {} corpus images", images.len());

    let mut report = String::new();
    let (mut ok, mut clean_errors) = (0, 0);
    for (stem, path) in &images {
        let name = format!("{stem}.img.gz");
        let bytes = imagekit::corpus::read(path).unwrap_or_else(|e| panic!("{e}"));
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

        // The outcome this image must have.
        let first_error = match &result {
            Ok(o) => o.errors.first(),
            Err(e) => Some(e),
        };
        match (EXPECTED_ERRORS.iter().find(|(n, _)| n == stem), first_error) {
            (Some((_, expected)), Some(first)) => assert!(
                expected(first),
                "{stem}: not the expected first error: {first} ({first:?})"
            ),
            (Some(_), None) => panic!("{stem}: expected an error, but it read cleanly"),
            (None, Some(first)) => panic!("{stem}: expected to read cleanly, got: {first}"),
            (None, None) => {}
        }
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
                let mut first: Vec<_> = o.errors.iter().take(3).map(ToString::to_string).collect();
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
