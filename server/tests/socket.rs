//! `server serve` and `server query`: a served image answers batches exactly as an in-process
//! tier stack does; malformed, truncated and oversized messages get errors and the service
//! keeps serving its other clients (64 at once, and one that leaves mid-batch); the query
//! command prints the same JSON in-process and through the socket, and fails clearly. No root
//! needed, except for the BPF tier's batches (`serve --bpf`), which skip otherwise.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ext4::{Fs, InodeKind};
use predictor::wire::{self, BeginIn, HeaderStatus, Reply, Status};
use predictor::{Models, Pack, Query, StackOptions, Tier, TierStack};
use server::serve::status_of;

use common::{run_server, write_pack, SERVER};

/// A running `server serve`, killed on drop.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Service {
    fn start(image: &Path, pack: &Path, socket: &Path, stats: &Path, extra: &[&str]) -> Self {
        let child = Command::new(SERVER)
            .arg("serve")
            .arg(image)
            .arg("--models")
            .arg(pack)
            .arg("--socket")
            .arg(socket)
            .arg("--audit")
            .arg("--max-clients")
            .arg("128")
            .arg("--stats-json")
            .arg(stats)
            .args(extra)
            .env("IOMAP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {SERVER}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "serve did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            socket: socket.to_owned(),
        }
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket).unwrap_or_else(|e| panic!("connect: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("{e}"));
        s
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ask(conn: &mut UnixStream, queries: &[BeginIn]) -> Vec<Reply> {
    let req = wire::encode_request(queries).unwrap_or_else(|e| panic!("{e}"));
    conn.write_all(&req).unwrap_or_else(|e| panic!("send: {e}"));
    wire::read_reply(conn, queries.len()).unwrap_or_else(|e| panic!("reply: {e}"))
}

/// The reply the in-process stack gives to `q`.
fn expected(stack: &TierStack, q: &BeginIn) -> Reply {
    let q = match q.check() {
        Ok(q) => q,
        Err(s) => return Reply::error(s),
    };
    match stack.query(q) {
        Ok((m, kind)) => Reply::mapped(&m, kind),
        Err(e) => Reply::error(status_of(&e)),
    }
}

/// Queries over every regular file: each block of small files, 2000 evenly spread over larger
/// ones (2^32-block sparse files included), up to EOF or the end of the last extent, whichever
/// is later, reads and reports alternating (reports past EOF), around EOF both ways, with
/// assorted counts; plus records that must fail.
fn queries(fs: &Fs) -> Vec<BeginIn> {
    let bs = u64::from(fs.block_size());
    let mut out = Vec::new();
    let (entries, _) = fs.walk();
    for e in entries.iter().filter(|e| e.inode.kind == InodeKind::File) {
        let (ino, size) = (e.inode.ino, e.inode.size);
        let mapped_end = fs
            .extents(&e.inode)
            .ok()
            .and_then(|m| m.last().map(|l| l.end()))
            .unwrap_or(0);
        let blocks = size.div_ceil(bs).max(mapped_end);
        let step = usize::try_from((blocks / 2000).max(1)).unwrap_or(usize::MAX);
        for (i, b) in (0..blocks).step_by(step).enumerate() {
            let (pos, count) = (
                b * bs + (i as u64 % bs),
                [1, bs, 3 * bs + 5, u64::MAX][i % 4],
            );
            out.push(BeginIn::of(if i % 2 == 0 && pos < size {
                Query::read(ino, pos, count)
            } else {
                Query::report(ino, pos, count)
            }));
        }
        for pos in [size.saturating_sub(1), size, size + 1] {
            out.push(BeginIn::of(Query::read(ino, pos, u64::MAX)));
            out.push(BeginIn::of(Query::report(ino, pos, u64::MAX)));
        }
    }
    out.push(BeginIn::report(999_999, 0, 1)); // no such inode
    out.push(BeginIn::report(2, 0, 1)); // the root directory: not a regular file
    out.push(BeginIn::report(1 << 40, 0, 1)); // inode over 32 bits: malformed
    out.push(BeginIn::report(12, 0, 0)); // zero count: malformed
    let mut q = BeginIn::report(12, 0, 1);
    q.reserved = 7; // malformed
    out.push(q);
    q = BeginIn::report(12, 0, 1);
    q.opflags = 1; // FUSE_IOMAP_OP_WRITE on a read-only server
    out.push(q);
    out
}

/// The ext4-4k test image, built once for both tests (imagekit cannot build the same kind twice
/// at once in one process: they would share a work directory).
fn ext4k() -> &'static imagekit::Image {
    static IMAGE: OnceLock<(tempfile::TempDir, imagekit::Image)> = OnceLock::new();
    &IMAGE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let img = imagekit::Recipe::Debugfs(imagekit::Kind::Ext4k)
                .build(dir.path())
                .unwrap_or_else(|e| panic!("building ext4-4k: {e}"));
            (dir, img)
        })
        .1
}

#[test]
fn with_the_bpf_tier_batches_get_the_same_mappings() {
    if !common::root_or_skip("with_the_bpf_tier_batches_get_the_same_mappings") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let img = ext4k();
    let pack_path = tmp.path().join("ext4-4k.pack");
    let pack = write_pack(&img.path, &pack_path);
    let fs = Arc::new(Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{e}")));
    let (stack, _) = TierStack::build(
        fs.clone(),
        Tier::Learned,
        Models::Pack(&pack),
        StackOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let socket = tmp.path().join("iomap.sock");
    let stats = tmp.path().join("stats.json");
    let service = Service::start(&img.path, &pack_path, &socket, &stats, &["--bpf"]);
    let qs = queries(&fs);
    let mut conn = service.connect();
    let (learned, bpf) = (
        predictor::TierKind::Learned.code(),
        predictor::TierKind::Front.code(),
    );
    // Files with extents: the program loads their models (one without extents has nothing
    // to model, and the userspace learned index answers its report queries alone).
    let with_extents = |ino: u64| {
        u32::try_from(ino).is_ok_and(|ino| stack.extent_count(ino).is_some_and(|n| n > 0))
    };
    let mut in_kernel = 0;
    for chunk in qs.chunks(wire::MAX_RECORDS as usize) {
        for (q, got) in chunk.iter().zip(ask(&mut conn, chunk)) {
            let mut want = expected(&stack, q);
            // What the userspace learned index answers, the program answers in the kernel.
            if want.tier == learned && with_extents(q.ino) {
                want.tier = bpf;
                in_kernel += 1;
            }
            assert_eq!(got, want, "{q:?}");
        }
    }
    assert!(in_kernel > 1000, "{in_kernel}");
}

/// `serve --tier compact`: every batch record equals the in-process compact stack's, tier code
/// `compact` on the wire, and the server's audit (against the on-disk walk) finds nothing.
#[test]
fn with_the_compact_tier_batches_get_the_same_mappings() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let img = ext4k();
    let pack_path = tmp.path().join("ext4-4k.pack");
    write_pack(&img.path, &pack_path);
    let fs = Arc::new(Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{e}")));
    let (stack, _) = TierStack::build(
        fs.clone(),
        Tier::Compact,
        Models::None,
        StackOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let socket = tmp.path().join("iomap.sock");
    let stats = tmp.path().join("stats.json");
    let service = Service::start(
        &img.path,
        &pack_path,
        &socket,
        &stats,
        &["--tier", "compact"],
    );
    let qs = queries(&fs);
    let mut conn = service.connect();
    let compact = predictor::TierKind::Compact.code();
    let mut answered = 0;
    for chunk in qs.chunks(wire::MAX_RECORDS as usize) {
        for (q, got) in chunk.iter().zip(ask(&mut conn, chunk)) {
            let want = expected(&stack, q);
            answered += usize::from(want.status == 0 && want.tier == compact);
            assert_eq!(got, want, "{q:?}");
        }
    }
    assert!(answered > 1000, "{answered}");
    drop(conn);
    // SIGTERM writes the stats.
    let mut service = service;
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(service.child.id() as i32, libc::SIGTERM) };
    let status = service.child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "serve exited {status:?}");
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&stats).unwrap_or_else(|e| panic!("stats: {e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["audit_mismatches"], 0, "{s}");
    assert!(s["audit_checked"].as_u64().unwrap_or(0) > 1000, "{s}");
}

#[test]
fn served_batches_equal_the_in_process_stack_and_bad_clients_do_not_hurt_others() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let img = ext4k();
    let pack_path = tmp.path().join("ext4-4k.pack");
    write_pack(&img.path, &pack_path);
    let pack = Pack::read_file(&pack_path).unwrap_or_else(|e| panic!("{e}"));
    let fs = Arc::new(Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{e}")));
    let (stack, _) = TierStack::build(
        fs.clone(),
        Tier::Learned,
        Models::Pack(&pack),
        StackOptions { audit: true },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let socket = tmp.path().join("iomap.sock");
    let stats = tmp.path().join("stats.json");
    let service = Service::start(&img.path, &pack_path, &socket, &stats, &[]);

    let qs = queries(&fs);
    let want: Vec<Reply> = qs.iter().map(|q| expected(&stack, q)).collect();
    assert!(want
        .iter()
        .any(|r| r.status == 0 && r.tier == predictor::TierKind::Learned.code()));
    for status in [
        Status::UnknownInode,
        Status::Malformed,
        Status::ReadOnly,
        Status::PastEof,
    ] {
        assert!(
            want.iter().any(|r| r.status == status as u32),
            "no {status:?} case"
        );
    }
    // Reports of blocks preallocated past EOF (/mixed) answer UNWRITTEN.
    let past_eof_unwritten = qs.iter().zip(&want).any(|(q, r)| {
        let size = u32::try_from(q.ino)
            .ok()
            .and_then(|ino| fs.inode(ino).ok())
            .map_or(u64::MAX, |i| i.size);
        q.pos >= size && r.status == 0 && r.io.kind == wire::TYPE_UNWRITTEN
    });
    assert!(past_eof_unwritten, "no report past EOF answered UNWRITTEN");

    // A well-behaved client, connected before the bad ones and used after them.
    let mut good = service.connect();
    let check = |conn: &mut UnixStream| {
        for (chunk, want) in qs
            .chunks(wire::MAX_RECORDS as usize)
            .zip(want.chunks(wire::MAX_RECORDS as usize))
        {
            let got = ask(conn, chunk);
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(g, w, "record {i}: {:?}", chunk[i]);
            }
        }
    };
    check(&mut good);

    // Bad clients, each answered with an error header and disconnected.
    let refused = |bytes: &[u8], shutdown: bool, want: HeaderStatus| {
        let mut c = service.connect();
        c.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
        if shutdown {
            c.shutdown(Shutdown::Write)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut h = [0u8; wire::HEADER_LEN];
        c.read_exact(&mut h)
            .unwrap_or_else(|e| panic!("no error reply for {want:?}: {e}"));
        let (status, count) = wire::decode_reply_header(&h).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((status, count), (want, 0));
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the server kept talking after refusing");
    };
    let mut bad_magic = wire::request_header(1).to_vec();
    bad_magic[0] = b'X';
    refused(&bad_magic, false, HeaderStatus::BadMagic);
    refused(
        &wire::request_header(wire::MAX_RECORDS + 1),
        false,
        HeaderStatus::TooMany,
    );
    refused(
        &wire::request_header(u32::MAX),
        false,
        HeaderStatus::TooMany,
    );
    let mut truncated = wire::request_header(5).to_vec();
    truncated.extend_from_slice(&BeginIn::report(12, 0, 1).encode());
    refused(&truncated, true, HeaderStatus::Truncated);
    refused(&wire::request_header(1)[..7], true, HeaderStatus::Truncated);
    let mut bad_version = wire::request_header(0).to_vec();
    bad_version[4] = 99;
    refused(&bad_version, false, HeaderStatus::BadVersion);

    // A client that disconnects in the middle of a batch (header and one of five records).
    {
        let mut c = service.connect();
        let mut partial = wire::request_header(5).to_vec();
        partial.extend_from_slice(&qs[0].encode());
        c.write_all(&partial).unwrap_or_else(|e| panic!("{e}"));
    }

    // The first client still gets the same answers, and so do 64 at once.
    check(&mut good);
    std::thread::scope(|s| {
        for _ in 0..64 {
            s.spawn(|| check(&mut service.connect()));
        }
    });
    // An empty batch is fine.
    assert!(ask(&mut good, &[]).is_empty());
    drop(good);

    // SIGTERM: exits 0, removes the socket, writes the stats.
    let mut service = service;
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(service.child.id() as i32, libc::SIGTERM) };
    let status = service.child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "serve exited {status:?}");
    assert!(!socket.exists(), "socket left behind");
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&stats).unwrap_or_else(|e| panic!("stats: {e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["audit_mismatches"], 0, "{s}");
    // Six refused headers and the client that left mid-batch.
    assert_eq!(s["counters"]["bad_messages"], 7, "{s}");
    assert!(
        s["counters"]["records"].as_u64().unwrap_or(0) >= 66 * qs.len() as u64,
        "{s}"
    );
}

/// Runs `server query ARGS`; (stdout, stderr, success).
fn query(args: &[&OsStr]) -> (String, String, bool) {
    let mut all: Vec<&OsStr> = vec![OsStr::new("query")];
    all.extend_from_slice(args);
    let out = run_server(&all);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn query_prints_the_same_json_in_process_and_through_the_socket() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let img = ext4k();
    let pack = tmp.path().join("p.pack");
    write_pack(&img.path, &pack);
    let socket = tmp.path().join("q.sock");
    let stats = tmp.path().join("stats.json");
    let service = Service::start(&img.path, &pack, &socket, &stats, &[]);
    let fs = Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{e}"));
    let os = |s: &str| OsStr::new(s).to_owned();
    let image = img.path.as_os_str().to_owned();
    let mut checked = 0;
    for spec in img
        .specs
        .iter()
        .filter(|s| s.kind == imagekit::FileKind::File)
    {
        let Ok(inode) = fs.lookup_path(&spec.path) else {
            continue;
        };
        if inode.size == 0 || inode.has_inline_data() {
            continue;
        }
        for pos in [0, inode.size / 3, inode.size - 1] {
            let pos = pos.to_string();
            let base = [os("--path"), os(&spec.path), os("--pos"), os(&pos)];
            let mut local: Vec<&OsStr> = vec![&image, OsStr::new("--models"), pack.as_os_str()];
            local.extend(base.iter().map(|s| s.as_os_str()));
            let mut remote: Vec<&OsStr> = vec![&image, OsStr::new("--socket"), socket.as_os_str()];
            remote.extend(base.iter().map(|s| s.as_os_str()));
            let (a, err_a, ok_a) = query(&local);
            let (b, err_b, ok_b) = query(&remote);
            assert!(ok_a && ok_b, "{}: {err_a} {err_b}", spec.path);
            assert_eq!(a, b, "{} at {pos}", spec.path);
            let v: serde_json::Value =
                serde_json::from_str(&a).unwrap_or_else(|e| panic!("{a}: {e}"));
            assert_eq!(
                v["offset"].as_u64().map(|o| o.to_string()),
                Some(pos.clone())
            );
            assert!(["HOLE", "MAPPED", "UNWRITTEN"].contains(&v["type"].as_str().unwrap_or("")));
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} queries compared");

    // Clear failures, non-zero exit.
    let img_os = img.path.as_os_str();
    let (_, err, ok) = query(&[
        img_os,
        OsStr::new("--path"),
        OsStr::new("/no/such"),
        OsStr::new("--pos"),
        OsStr::new("0"),
    ]);
    assert!(!ok && err.contains("no entry"), "{err}");
    // An empty file: a read at 0 is past EOF, a report (the default) finds the hole.
    let empty = [
        img_os,
        OsStr::new("--path"),
        OsStr::new("/empty"),
        OsStr::new("--pos"),
        OsStr::new("0"),
    ];
    let (_, err, ok) = query(&[&empty[..], &[OsStr::new("--op"), OsStr::new("read")]].concat());
    assert!(!ok && err.contains("end of file"), "{err}");
    let (out, err, ok) = query(&empty);
    assert!(ok && out.contains("\"HOLE\""), "{out} {err}");
    // /mixed has blocks 80..128 preallocated past its 80-block size: a report there answers
    // UNWRITTEN, in-process and through the socket alike; a read is refused.
    let past = (100 * 4096).to_string();
    let mixed = [
        OsStr::new("--path"),
        OsStr::new("/mixed"),
        OsStr::new("--pos"),
        OsStr::new(&past),
    ];
    let (a, err_a, ok_a) = query(
        &[
            &[img_os, OsStr::new("--models"), pack.as_os_str()][..],
            &mixed,
        ]
        .concat(),
    );
    let (b, err_b, ok_b) = query(
        &[
            &[img_os, OsStr::new("--socket"), socket.as_os_str()][..],
            &mixed,
        ]
        .concat(),
    );
    assert!(ok_a && ok_b && a == b, "{a} {err_a} | {b} {err_b}");
    assert!(a.contains("\"UNWRITTEN\""), "{a}");
    let (_, err, ok) = query(
        &[
            &[img_os][..],
            &mixed,
            &[OsStr::new("--op"), OsStr::new("read")],
        ]
        .concat(),
    );
    assert!(!ok && err.contains("end of file"), "{err}");
    let (_, err, ok) = query(&[
        OsStr::new("--socket"),
        socket.as_os_str(),
        OsStr::new("--ino"),
        OsStr::new("999999"),
        OsStr::new("--pos"),
        OsStr::new("0"),
    ]);
    assert!(!ok && err.contains("no regular file"), "{err}");
    // A pack for another image.
    let other = imagekit::Recipe::Debugfs(imagekit::Kind::No64bit)
        .build(tmp.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, err, ok) = query(&[
        other.path.as_os_str(),
        OsStr::new("--models"),
        pack.as_os_str(),
        OsStr::new("--ino"),
        OsStr::new("12"),
        OsStr::new("--pos"),
        OsStr::new("0"),
    ]);
    assert!(!ok && err.contains("p.pack"), "{err}");
    drop(service);
}
