//! The vendored e2fsprogs regression images (`testdata/e2fsprogs/*.img.gz`, many deliberately
//! corrupt): where they are and how to unpack one, for every test that reads them.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

/// The corpus folder: `IOMAP_CORPUS` if set, else `testdata/e2fsprogs` of this repository.
pub fn dir() -> PathBuf {
    std::env::var_os("IOMAP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/e2fsprogs"))
}

/// Every image of the corpus as `(name, path of the .img.gz)`, sorted by name (`f_baddir`).
pub fn images() -> Result<Vec<(String, PathBuf)>> {
    let dir = dir();
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map_err(io_err("listing the corpus", &dir))?
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".img.gz")?
                .to_owned();
            Some((name, path))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The image `gz` uncompressed, in memory.
pub fn read(gz: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(gz).map_err(io_err("opening", gz))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(io_err("gunzipping", gz))?;
    Ok(bytes)
}

/// Writes the image `gz` uncompressed to `dst`.
pub fn unpack(gz: &Path, dst: &Path) -> Result<()> {
    std::fs::write(dst, read(gz)?).map_err(io_err("writing", dst))
}
