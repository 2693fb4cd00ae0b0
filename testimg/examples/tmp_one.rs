fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut a = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(a.next().ok_or("dir")?);
    let which = a.next().ok_or("recipe")?;
    let scale: u32 = a.next().ok_or("scale")?.parse()?;
    let r = testimg::kernel::Allocated::ALL
        .into_iter()
        .find(|r| format!("{r:?}") == which)
        .ok_or("recipe")?;
    std::fs::create_dir_all(&dir)?;
    let p = testimg::kernel::allocated_with_kernel(&dir, r, scale, 1)?;
    println!("{}", p.display());
    Ok(())
}
