//! The commands of `reports`, one file each: its arguments, and a run that measures through
//! [`crate::support`] (or runs the experiments of [`crate::exp`]) and prints.

pub mod adversarial;
pub mod bpf_latency;
pub mod cache;
pub mod huge;
pub mod load;
pub mod pipeline;
pub mod readme;
pub mod reads;
pub mod results;
pub mod structures;
