//! `cargo run -p imagekit --example punched -- DIR EXTENTS`: builds a kernel-punched image.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: punched DIR EXTENTS")?);
    let n: u32 = args.next().ok_or("usage: punched DIR EXTENTS")?.parse()?;
    let t = std::time::Instant::now();
    let image = imagekit::kernel::punched_with_kernel(&dir, n)?;
    println!("{} in {:?}", image.display(), t.elapsed());
    Ok(())
}
