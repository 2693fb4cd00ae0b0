//! Builds images into a directory, to look at them by hand:
//! `cargo run -p imagekit --example build_images -- DIR [RECIPE...]`. A RECIPE is a name of
//! `imagekit::Recipe::STANDARD` or `Recipe::DEMO` (`ext4-1k`, `kernel-appenders`), `standard`
//! or `demo` for the whole list (all standard images when none is given), `kernel-punched-N`
//! for a kernel-punched file of N extents, or `KERNEL-NAME:SCALE` for a kernel-allocated map of
//! SCALE operations (`kernel-sqlite:2000`). The kernel's recipes need root (loop mounts). Set
//! `IMAGEKIT_KEEP=1` to keep the debugfs scripts.

use std::path::PathBuf;

use imagekit::kernel::Allocated;
use imagekit::Recipe;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: build_images DIR [RECIPE...]")?);
    let mut recipes = Vec::new();
    for name in args {
        recipes.extend(parse(&name).ok_or_else(|| format!("no recipe named {name}"))?);
    }
    if recipes.is_empty() {
        recipes = Recipe::STANDARD.to_vec();
    }
    let start = std::time::Instant::now();
    for image in imagekit::build_many(&recipes, &dir)? {
        println!(
            "{:<22} {:>6} ms  {}  {}",
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

/// The recipes `name` stands for.
fn parse(name: &str) -> Option<Vec<Recipe>> {
    match name {
        "standard" => return Some(Recipe::STANDARD.to_vec()),
        "demo" => return Some(Recipe::DEMO.to_vec()),
        _ => {}
    }
    if let Some(recipe) = Recipe::named(name) {
        return Some(vec![recipe]);
    }
    if let Some(n) = name.strip_prefix("kernel-punched-") {
        let extents = n.parse().ok()?;
        return Some(vec![Recipe::Punched { extents }]);
    }
    let (pattern, scale) = name.split_once(':')?;
    let pattern = Allocated::ALL.into_iter().find(|p| p.name() == pattern)?;
    let scale = scale.parse().ok()?;
    let seed = imagekit::DEMO_SEED;
    Some(vec![Recipe::Allocated {
        pattern,
        scale,
        seed,
    }])
}
