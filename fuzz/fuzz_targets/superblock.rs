//! The fuzz input is a whole image: superblock, group descriptors, bitmaps, inode tables,
//! extent trees, directories, all read through the public API.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fs) = ext4::Fs::open(ext4::MemSource(data.to_vec())) {
        iomap_fuzz::read_everything(&fs);
    }
});
