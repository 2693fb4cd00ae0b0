//! Fuzz bytes as directory blocks: the first block size of them replaces `/dir`'s only block
//! (linear), the next replaces `/hdir`'s dx root (htree); then read_dir, lookups and a walk.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let l = iomap_fuzz::layout();
    let mut img = iomap_fuzz::template().to_vec();
    iomap_fuzz::patch(&mut img, l.dir_block, data, l.block_size);
    let rest = data.get(l.block_size..).unwrap_or(&[]);
    iomap_fuzz::patch(&mut img, l.hdir_block, rest, l.block_size);
    let fs = ext4::Fs::open(ext4::MemSource(img)).expect("template opens");
    for path in ["/dir", "/hdir"] {
        if let Ok(dir) = fs.lookup_path(path) {
            iomap_fuzz::read_inode(&fs, &dir);
            let _ = fs.lookup(&dir, b"f0007");
        }
    }
    let _ = fs.lookup_path("/dir/f1/x");
    let _ = fs.walk();
});
