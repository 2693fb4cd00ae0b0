//! `server query`: one `iomap_begin` query, answered in-process by a freshly built tier stack or
//! by a running `server serve` through its socket, printed as one JSON object.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{bail, Context};
use bpf::TierChoice;
use predictor::{Mapping, Query};
use serde::Serialize;

use crate::image;
use predictor::wire::{self, BeginIn, Status};

/// Arguments of `server query`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Output, one line: {\"offset\":B,\"length\":B,\"addr\":B,\"type\":\"MAPPED\",\"tier\":\"learned\"}
  offset  the queried position (bytes)
  length  bytes from offset with one type and one physical run, clipped to --count (and,
          with --op read, to EOF)
  addr    image byte offset of `offset` (null for holes)
  type    HOLE, MAPPED or UNWRITTEN
  tier    the structure that answered: learned, btree, sorted, rangemap, ondisk, iext,
          front (the BPF program) or compact

Examples:
  server query disk.img --models disk.pack --path /big --pos 1048576
  server query disk.img --path /db --pos 1073741824 --op read
  server query --socket /run/iomap.sock --ino 12 --pos 0 --count 4096
  server query disk.img --socket /run/iomap.sock --path /big --pos 0")]
pub struct QueryArgs {
    /// The ext4 image, read-only. Needed in-process; with --socket only to resolve --path.
    image: Option<PathBuf>,
    /// Model pack trained on this image (by `training fit`). Without it the learned tier
    /// declines every query and the B-tree answers; the compact tier fits its lines at load.
    #[arg(long, value_name = "PACK", conflicts_with = "socket")]
    models: Option<PathBuf>,
    /// The file, by absolute path inside the image.
    #[arg(
        long,
        value_name = "P",
        required_unless_present = "ino",
        conflicts_with = "ino"
    )]
    path: Option<String>,
    /// The file, by inode number.
    #[arg(long, value_name = "N")]
    ino: Option<u32>,
    /// Byte offset in the file to map.
    #[arg(long, value_name = "BYTES")]
    pos: u64,
    /// Bytes to map from --pos [default: as far as the mapping goes].
    #[arg(long, value_name = "BYTES")]
    count: Option<u64>,
    /// What the mapping is for, as iomap's op flags say: `report` (FIEMAP, SEEK_DATA/HOLE)
    /// maps past the file size too, where blocks preallocated with `fallocate --keep-size`
    /// answer UNWRITTEN; `read` refuses a --pos at or past the size and stops at it.
    #[arg(long, value_enum, default_value_t = OpArg::Report)]
    op: OpArg,
    /// Tier stack to build (in-process only; a socket service has its own).
    #[arg(
        long,
        value_parser = image::tier_parser(),
        default_value = "learned",
        conflicts_with = "socket"
    )]
    tier: TierChoice,
    /// Ask a running `server serve` on this Unix socket instead of building a stack here.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

/// `--op`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum OpArg {
    /// `FUSE_IOMAP_OP_REPORT`.
    Report,
    /// A read (no op flags).
    Read,
}

impl QueryArgs {
    /// The query for inode `ino` ("as far as it goes": the mapping stops at its extent or
    /// hole, and for reads at EOF, anyway).
    fn query(&self, ino: u32) -> Query {
        let count = self.count.unwrap_or(u64::MAX);
        match self.op {
            OpArg::Report => Query::report(ino, self.pos, count),
            OpArg::Read => Query::read(ino, self.pos, count),
        }
    }
}

/// The printed answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct QueryJson {
    /// File byte offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Image byte offset, `null` for holes.
    pub addr: Option<u64>,
    /// `HOLE`, `MAPPED` or `UNWRITTEN`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The structure that answered.
    pub tier: String,
}

impl QueryJson {
    /// The JSON of a mapping found by `tier`.
    pub fn new(m: &Mapping, tier: &str) -> Self {
        Self {
            offset: m.offset,
            length: m.length,
            addr: m.addr,
            kind: m.kind.name().into(),
            tier: tier.into(),
        }
    }
}

/// Runs `server query`.
pub fn run(args: &QueryArgs) -> anyhow::Result<()> {
    let answer = match &args.socket {
        Some(socket) => via_socket(args, socket)?,
        None => in_process(args)?,
    };
    println!("{}", serde_json::to_string(&answer)?);
    Ok(())
}

/// What the file argument names, for messages.
fn what(args: &QueryArgs, ino: u32) -> String {
    match &args.path {
        Some(p) => format!("{p} (inode {ino})"),
        None => format!("inode {ino}"),
    }
}

/// Where a query error happened (the error itself names the inode).
fn context(image: &std::path::Path, args: &QueryArgs) -> String {
    match &args.path {
        Some(p) => format!("{}: {p}", image.display()),
        None => image.display().to_string(),
    }
}

fn in_process(args: &QueryArgs) -> anyhow::Result<QueryJson> {
    let Some(image) = &args.image else {
        bail!("an IMAGE is needed to answer in-process (or give --socket)");
    };
    let loaded = image::open(image, args.models.as_deref(), args.tier, false)?;
    let ino = match (&args.path, args.ino) {
        (_, Some(ino)) => ino,
        (Some(path), None) => {
            loaded
                .fs
                .lookup_path(path)
                .with_context(|| image.display().to_string())?
                .ino
        }
        (None, None) => bail!("give --path or --ino"),
    };
    let (m, kind) = loaded
        .query(args.query(ino))
        .with_context(|| context(image, args))?;
    Ok(QueryJson::new(&m, kind.name()))
}

fn via_socket(args: &QueryArgs, socket: &std::path::Path) -> anyhow::Result<QueryJson> {
    let ino = match (&args.path, args.ino) {
        (_, Some(ino)) => ino,
        (Some(path), None) => {
            let Some(image) = &args.image else {
                bail!(
                    "--path through --socket needs the IMAGE to resolve the path (or give --ino)"
                );
            };
            let fs =
                ext4::Fs::open_path(image).with_context(|| format!("image {}", image.display()))?;
            fs.lookup_path(path)
                .with_context(|| image.display().to_string())?
                .ino
        }
        (None, None) => bail!("give --path or --ino"),
    };
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let req = wire::encode_request(&[BeginIn::of(args.query(ino))])?;
    std::io::Write::write_all(&mut stream, &req)
        .with_context(|| format!("sending to {}", socket.display()))?;
    let replies = wire::read_reply(&mut stream, 1)
        .with_context(|| format!("reading the reply from {}", socket.display()))?;
    let Some(r) = replies.first() else {
        bail!("{}: empty reply", socket.display());
    };
    match Status::from_u32(r.status) {
        Some(Status::Ok) => {}
        Some(s) => bail!(
            "{}: byte {}: {} (status {})",
            what(args, ino),
            args.pos,
            s.describe(),
            r.status
        ),
        None => bail!("{}: unknown status {}", what(args, ino), r.status),
    }
    let (Some(kind), Some(tier)) = (r.type_name(), r.tier_kind()) else {
        bail!(
            "{}: reply with unknown type {} or tier {}",
            socket.display(),
            r.io.kind,
            r.tier
        );
    };
    Ok(QueryJson {
        offset: r.io.offset,
        length: r.io.length,
        addr: (r.io.addr != wire::NULL_ADDR).then_some(r.io.addr),
        kind: kind.into(),
        tier: tier.name().into(),
    })
}
