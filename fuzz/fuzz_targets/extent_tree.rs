//! The template's `/frag` (a depth-1 extent tree) with fuzz bytes as its inode's `i_block`
//! (first 60 bytes) and then as its leaf blocks, one block size each; then every read of it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let l = iomap_fuzz::layout();
    let mut img = iomap_fuzz::template().to_vec();
    iomap_fuzz::patch(&mut img, l.frag_iblock, data, 60);
    let mut rest = data.get(60..).unwrap_or(&[]);
    for &leaf in &l.frag_leaves {
        iomap_fuzz::patch(&mut img, leaf, rest, l.block_size);
        rest = rest.get(l.block_size..).unwrap_or(&[]);
    }
    let fs = ext4::Fs::open(ext4::MemSource(img)).expect("template opens");
    if let Ok(frag) = fs.lookup_path("/frag") {
        iomap_fuzz::read_inode(&fs, &frag);
    }
});
