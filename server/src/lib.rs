//! The `server` binary's library: an ext4 image served read-only over FUSE, and `iomap_begin`
//! queries served over a Unix socket, with every block mapping answered by a
//! [`predictor::TierStack`].
//!
//! - [`bpf_command`]: `server bpf check` (the BPF tier itself is the `bpf` crate; timing it
//!   is an experiment, `reports bpf-latency`).
//! - [`image`]: open an image and its model pack, build the tier stack (shared by every command).
//! - [`query`]: `server query`, one mapping as JSON, in-process or through the socket.
//! - [`serve`]: `server serve`, the socket service (its message format is
//!   [`predictor::wire`]; its load generator is an experiment, `reports load`).
//! - [`fusefs`]: the FUSE filesystem (one `fuser::Filesystem` impl over library calls).
//! - [`mount`]: `server mount`, the life cycle around it: checks, signals, stats at unmount.
//! - [`stats`]: per-tier counters and lookup-latency histograms, as JSON.

pub mod bpf_command;
pub mod fusefs;
pub mod image;
pub mod mount;
pub mod query;
pub mod serve;
pub mod signals;
pub mod stats;
