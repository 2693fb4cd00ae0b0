//! Builds test images into a directory, to look at them by hand:
//! `cargo run -p imagekit --example build_images -- DIR [NAME...]` (all standard images when no
//! name is given; `demo` for the demo mix). Set `IMAGEKIT_KEEP=1` to keep the debugfs scripts.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: build_images DIR [NAME...]")?);
    let names: Vec<String> = args.collect();
    let kinds: Vec<imagekit::Kind> = if names.is_empty() {
        imagekit::Kind::STANDARD.to_vec()
    } else if names == ["demo"] {
        imagekit::Kind::DEMO.to_vec()
    } else {
        names
            .iter()
            .map(|name| {
                imagekit::Kind::STANDARD
                    .iter()
                    .chain(imagekit::Kind::DEMO)
                    .copied()
                    .find(|k| k.name() == name)
                    .ok_or_else(|| format!("no image kind named {name}"))
            })
            .collect::<Result<_, _>>()?
    };
    let start = std::time::Instant::now();
    for image in imagekit::build_many(&kinds, &dir)? {
        println!(
            "{:<18} {:>6} ms  {}  {}",
            image.name,
            image.build_time.as_millis(),
            image.path.display(),
            image.description
        );
        for spec in &image.specs {
            println!("    {:<28} {}", spec.path, spec.note);
        }
    }
    println!("total {} ms", start.elapsed().as_millis());
    Ok(())
}
