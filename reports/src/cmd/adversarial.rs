//! `reports adversarial`: the search of [`crate::support::adversarial`] run and printed, one
//! table (or JSON object) per worst map.

use std::path::PathBuf;

use anyhow::Result;
use predictor::adversary::{worst_maps, Budget, Found};
use predictor::regime::Regime;

use crate::support::adversarial::{evaluate, realise_on_kernel, BAR_PERCENT};
use crate::support::race::Effort;
use crate::support::rows::met;

/// The command's arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Seed of the search (the same seed gives the same maps).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Extents per map.
    #[arg(long, default_value_t = Budget::REPORT.extents)]
    pub extents: usize,
    /// Random genomes per objective before hill-climbing.
    #[arg(long, default_value_t = Budget::REPORT.random)]
    pub random: usize,
    /// Hill-climbing mutations per objective.
    #[arg(long, default_value_t = Budget::REPORT.climb)]
    pub climb: usize,
    /// One JSON object per map instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Toy scale (a small search, a few timed rounds; numbers are not meaningful).
    #[arg(long)]
    pub quick: bool,
    /// Also make every worst map's logical layout through the kernel (needs root): a fresh
    /// ext4 image in this directory, loop-mounted read-write; the map the kernel's allocator
    /// made is read back from the image and raced as `NAME-kernel`. Images are removed after.
    #[arg(long, value_name = "DIR")]
    pub kernel: Option<PathBuf>,
}

/// The search budget of `args`.
pub fn budget(args: &Args) -> Budget {
    if args.quick {
        Budget::QUICK
    } else {
        Budget {
            extents: args.extents,
            random: args.random.max(1),
            climb: args.climb,
        }
    }
}

/// `reports adversarial`.
pub fn run(args: &Args) -> Result<()> {
    let effort = if args.quick {
        Effort::quick()
    } else {
        Effort::full()
    };
    let budget = budget(args);
    tracing::info!(?budget, seed = args.seed, "searching the worst maps");
    let mut maps = worst_maps(args.seed, budget);
    if let Some(dir) = &args.kernel {
        let mut made = Vec::new();
        for found in &maps {
            let name = format!("{}-kernel", found.name);
            match realise_on_kernel(dir, &name, &found.extents) {
                Ok(extents) => {
                    tracing::info!(
                        map = %name,
                        generated = found.extents.len(),
                        kernel = extents.len(),
                        "realised through the kernel"
                    );
                    made.push(Found {
                        name,
                        score: found.objective.score(&extents),
                        extents,
                        ..found.clone()
                    })
                }
                Err(e) => tracing::warn!(map = %name, error = %format!("{e:#}"), "not realised"),
            }
        }
        maps.extend(made);
    }
    let mut not_met = 0;
    for found in &maps {
        let (checked, r) = evaluate(found, &effort)?;
        not_met += usize::from(!r.met);
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
            continue;
        }
        println!(
            "{} ({} extents, score {:.2}, {} answers checked)\n  {}",
            r.map, r.extents, r.score, checked, r.genome
        );
        println!(
            "  {:<24} {:>10} {:>7} {:>12}",
            "structure",
            "bytes",
            "B/ext",
            Regime::WarmShared.name()
        );
        for row in &r.rows {
            let label = if row.structure == "chosen" {
                format!("chosen={}", r.chosen)
            } else {
                row.structure.clone()
            };
            println!(
                "  {:<24} {:>10} {:>7.2} {:>12.1}",
                label, row.bytes, row.bytes_per_extent, row.ns_warm_shared
            );
        }
        println!(
            "  chosen {} ({:.2} lines per lookup, tree {:.2}): {:.2}x iext16's time, within {}%: {}",
            r.chosen,
            r.chosen_lines,
            r.reference_lines,
            r.chosen_over_iext16,
            BAR_PERCENT,
            met(r.met)
        );
    }
    if !args.json {
        println!(
            "chosen within {}% of iext16 (warm-shared): {} of {} maps",
            BAR_PERCENT,
            maps.len() - not_met,
            maps.len()
        );
    }
    Ok(())
}
