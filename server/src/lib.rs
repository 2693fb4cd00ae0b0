//! The `server` binary's library: an ext4 image served read-only over FUSE, and `iomap_begin`
//! queries served over a Unix socket, with every block mapping answered by a
//! [`predictor::TierStack`].
//!
//! - [`bpf_command`]: `server bpf check` and `server bpf latency` (the BPF tier itself is the
//!   `bpf` crate).
//! - [`image`]: open an image and its model pack, build the tier stack (shared by every command).
//! - [`query`]: `server query`, one mapping as JSON, in-process or through the socket.
//! - [`wire`]: the socket's message format (records shaped like the fuse-iomap uapi).
//! - [`serve`]: `server serve`, the socket service; [`load`]: `server load`, its load generator.
//! - [`fusefs`]: the FUSE filesystem (one `fuser::Filesystem` impl over library calls).
//! - [`mount`]: `server mount`, the life cycle around it: checks, signals, stats at unmount.
//! - [`stats`]: per-tier counters and lookup-latency histograms, as JSON.

pub mod bpf_command;
pub mod fusefs;
pub mod image;
pub mod load;
pub mod mount;
pub mod mountinfo;
pub mod query;
pub mod serve;
pub mod signals;
pub mod stats;
pub mod wire;
