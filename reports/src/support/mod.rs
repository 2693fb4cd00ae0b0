//! What the commands and the experiments share: the structures and the datasets they run on,
//! the measurements (the structures' race, fio reads, trace replay, the adversarial search, the
//! huge map), the mounts, the machine, and the tables, figures and rows they write.

pub mod adversarial;
pub mod cache;
pub mod datasets;
pub mod fio;
pub mod huge;
pub mod images;
pub mod in_kernel;
pub mod live;
pub mod machine;
pub mod mounts;
pub mod plot;
pub mod population;
pub mod race;
pub mod results;
pub mod rows;
pub mod structures;
pub mod table;
pub mod timing;
