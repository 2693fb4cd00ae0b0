//! `training record` against the kernel: every built-in workload's trace rebuilds FIEMAP's maps
//! at every checkpoint (the command checks it; the test reads the written file back and checks
//! it again), a user's command on an ext4 mounted elsewhere is traced too, and a ring buffer
//! too small for the workload is an error, never a shorter trace.
//!
//! Needs root (tracefs, loop mounts); as another user it says so and passes, unless
//! `IOMAP_REQUIRE_ALL` is set (CI sets it), where a skip is a failure.

use std::process::Command;

const TRAINING: &str = env!("CARGO_BIN_EXE_training");

fn record(args: &[&str], out: &std::path::Path) -> std::process::Output {
    Command::new(TRAINING)
        .arg("record")
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn every_workload_rebuilds_to_fiemap_at_every_checkpoint() {
    if !imagekit::root_or_skip("every_workload_rebuilds_to_fiemap_at_every_checkpoint") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for w in [
        "vm-disk",
        "fallocate-punch",
        "appenders",
        "torrent",
        "sqlite",
    ] {
        let out = dir.path().join(format!("{w}.parquet"));
        let o = record(&["--workload", w, "--scale", "200"], &out);
        assert!(
            o.status.success(),
            "{w}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let t = tables::trace::read_trace(&out).unwrap();
        let done = t.check().unwrap();
        assert!(done.checkpoints >= 2 && done.extents >= 1, "{w}: {done:?}");
        assert!(done.queries >= 100 && done.changes >= 100, "{w}: {done:?}");
    }
}

#[test]
fn a_command_on_a_users_mount_is_traced() {
    if !imagekit::root_or_skip("a_command_on_a_users_mount_is_traced") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount =
        imagekit::kernel::fresh_mount_nodelalloc(&dir.path().join("own.img"), 256 << 20).unwrap();
    let out = dir.path().join("own.parquet");
    let cmd = "for i in 1 2 3 4 5 6 7 8; do dd if=/dev/urandom of=f bs=4k count=1 seek=$((i * 7)) conv=notrunc,fsync status=none; done; fallocate -p -o 28672 -l 4096 f; cat f > /dev/null";
    let o = record(
        &["--mount", mount.path().to_str().unwrap(), "--command", cmd],
        &out,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = tables::trace::read_trace(&out).unwrap();
    let done = t.check().unwrap();
    assert!(done.checkpoints >= 1 && done.changes >= 8, "{done:?}");
    let last = t.events.iter().rev().find_map(|e| match e {
        livefs::trace::Event::Checkpoint { map, .. } if !map.is_empty() => Some(map.len()),
        _ => None,
    });
    assert_eq!(
        last,
        Some(7),
        "eight scattered blocks, one punched: seven extents"
    );
    mount.unmount().unwrap();
}

#[test]
fn a_trace_that_overflows_its_buffer_is_refused() {
    if !imagekit::root_or_skip("a_trace_that_overflows_its_buffer_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lost.parquet");
    let o = record(
        &[
            "--workload",
            "fallocate-punch",
            "--scale",
            "3000",
            "--buffer-kib",
            "8",
        ],
        &out,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("lost") && err.contains("events"), "{err}");
    assert!(!out.exists(), "no trace written");
}
