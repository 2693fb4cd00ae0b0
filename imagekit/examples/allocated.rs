//! `cargo run -p imagekit --example allocated -- DIR SCALE`: builds every kernel-allocator image
//! (`imagekit::kernel::Allocated`) with SCALE operations each (root: loop mounts).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: allocated DIR SCALE";
    let dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let scale: u32 = args.next().ok_or(usage)?.parse()?;
    for recipe in imagekit::kernel::Allocated::ALL {
        let t = std::time::Instant::now();
        let image = imagekit::kernel::allocated_with_kernel(&dir, recipe, scale, 1)?;
        println!("{} in {:?}", image.display(), t.elapsed());
    }
    Ok(())
}
