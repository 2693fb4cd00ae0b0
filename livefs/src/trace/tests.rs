use super::*;

fn ext(lblk: u32, pblk: u64, len: u32, unwritten: bool) -> BlockExtent {
    BlockExtent {
        lblk,
        pblk,
        len,
        unwritten,
    }
}

#[test]
fn a_map_change_overwrites_the_blocks_it_names_and_splits_the_rest() {
    let mut m = FileMap::from_extents(&[ext(0, 100, 10, true)]);
    m.apply(&Change::Map(ext(3, 500, 2, false))).unwrap();
    assert_eq!(
        m.extents(),
        vec![
            ext(0, 100, 3, true),
            ext(3, 500, 2, false),
            ext(5, 105, 5, true)
        ]
    );
    m.apply(&Change::Map(ext(3, 103, 2, true))).unwrap();
    assert_eq!(
        m.extents(),
        vec![ext(0, 100, 10, true)],
        "restating the map joins it again"
    );
}

#[test]
fn unmap_trims_both_ends() {
    let mut m = FileMap::from_extents(&[ext(0, 100, 10, false), ext(20, 300, 10, false)]);
    m.apply(&Change::Unmap { lblk: 5, len: 20 }).unwrap();
    assert_eq!(
        m.extents(),
        vec![ext(0, 100, 5, false), ext(25, 305, 5, false)]
    );
    m.apply(&Change::Unmap {
        lblk: 0,
        len: MAX_BLOCKS,
    })
    .unwrap();
    assert!(m.extents().is_empty());
}

#[test]
fn collapse_and_insert_shift_what_follows() {
    let mut m = FileMap::from_extents(&[ext(0, 100, 10, false), ext(20, 300, 10, false)]);
    m.apply(&Change::Collapse { lblk: 8, len: 4 }).unwrap();
    assert_eq!(
        m.extents(),
        vec![ext(0, 100, 8, false), ext(16, 300, 10, false)]
    );
    m.apply(&Change::Insert { lblk: 4, len: 3 }).unwrap();
    assert_eq!(
        m.extents(),
        vec![
            ext(0, 100, 4, false),
            ext(7, 104, 4, false),
            ext(19, 300, 10, false)
        ]
    );
    let mut edge = FileMap::from_extents(&[ext(u32::MAX - 10, 1, 5, false)]);
    assert!(edge.apply(&Change::Insert { lblk: 0, len: 8 }).is_err());
}

const LINES: &str = "\
# tracer: nop
 python3-3453    [001] ..... 11989.016561: ext4_es_lookup_extent_enter: dev 7,0 ino 12 lblk 2067
 kworker/u8:1-77 [000] ..... 11989.016562: ext4_es_insert_extent: dev 7,0 ino 12 es [2067/1) mapped 4194 status W
 odd: name 1.5: x-9 [001] ..... 11989.016563: ext4_es_insert_extent: dev 7,0 ino 12 es [0/2) mapped 0 status H
 other-1 [001] ..... 11989.016564: ext4_es_insert_extent: dev 7,1 ino 12 es [0/2) mapped 9 status W
 p-1 [001] ..... 11989.016565: ext4_collapse_range: dev 7,0 ino 12 offset 8192 len 4096
 p-1 [001] ..... 11989.016566: ext4_es_remove_extent: dev 7,0 ino 12 es [2/4294967293)
 p-1 [001] ..... 11989.016567: ext4_es_remove_extent: dev 7,0 ino 12 es [5/3)
 p-1 [001] ..... 11989.016568: tracing_mark_write: iomap-predictor-checkpoint 0
 p-1 [001] ..... 11989.016569: ext4_es_insert_extent: dev 7,0 ino 13 es [0/8) mapped 77 status UR
";

#[test]
fn tracefs_lines_become_events_with_the_shift_removal_folded_in() {
    let t = parse_trace(LINES, (7, 0), 4096).unwrap();
    assert_eq!(
        t.events,
        vec![
            Event::Query {
                ino: 12,
                lblk: 2067
            },
            Event::Change {
                ino: 12,
                change: Change::Map(ext(2067, 4194, 1, false))
            },
            Event::Change {
                ino: 12,
                change: Change::Unmap { lblk: 0, len: 2 }
            },
            Event::Change {
                ino: 12,
                change: Change::Collapse { lblk: 2, len: 1 }
            },
            Event::Change {
                ino: 12,
                change: Change::Unmap { lblk: 5, len: 3 }
            },
            Event::Change {
                ino: 13,
                change: Change::Map(ext(0, 77, 8, true))
            },
        ]
    );
    assert_eq!(t.checkpoints, vec![(5, 0)]);
}

#[test]
fn unreadable_lines_are_errors_naming_the_line() {
    for bad in [
        " p-1 [001] ..... 1.5: ext4_es_insert_extent: dev 7,0 ino 12 es [3/x) mapped 1 status W",
        " p-1 [001] ..... 1.5: ext4_es_lookup_extent_enter: dev 7,0 ino twelve lblk 1",
        " p-1 [001] ..... 1.5: ext4_es_insert_extent: dev 7,0 ino 12 es [4294967295/9) mapped 1 status W",
        " p-1 [001] ..... 1.5: ext4_es_insert_extent: dev 7,0 ino 12 es [0/9) mapped 1 status D",
        "no timestamp here",
    ] {
        let e = parse_trace(bad, (7, 0), 4096).unwrap_err();
        assert_eq!(e.line, 1, "{bad}");
    }
}

#[test]
fn a_checkpoint_that_differs_from_the_replay_is_refused_with_the_first_difference() {
    let mut t = Trace {
        block_size: 4096,
        initial: [(12, vec![ext(0, 100, 10, false)])].into(),
        events: vec![
            Event::Change {
                ino: 12,
                change: Change::Unmap { lblk: 2, len: 2 },
            },
            Event::Checkpoint {
                ino: 12,
                map: vec![ext(0, 100, 2, false), ext(4, 104, 6, false)],
            },
        ],
        ..Trace::default()
    };
    let done = t.check().unwrap();
    assert_eq!((done.checkpoints, done.extents, done.changes), (1, 2, 1));
    t.events[1] = Event::Checkpoint {
        ino: 12,
        map: vec![ext(0, 100, 10, false)],
    };
    let e = t.check().unwrap_err();
    assert!(
        matches!(
            e,
            CheckError::Differs {
                ino: 12,
                event: 1,
                ..
            }
        ),
        "{e}"
    );
}
