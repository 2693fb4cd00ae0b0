//! The worst maps the adversarial search finds (one per objective,
//! `predictor::adversary::worst_maps`, deterministic in the seed), every structure of
//! `reports structures` built over each and raced in the `warm-shared` regime (one run), with
//! the per-file choice (`predictor::index::choose`) raced beside them as the row `chosen`.
//! Per map: bytes per extent and ns per lookup of every structure, the choice, and whether the
//! choice is within 10% of iext16's time (the bar: met / not met).

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use ext4::Extent;
use predictor::adversary::{Found, Genome};
use predictor::index::choose::Chosen;
use predictor::synth::{in_orders, uniform_queries};
use predictor::{ExtentIndex, SortedIndex};

use crate::support::datasets::{Dataset, Source};
use crate::support::race::{Effort, ORDERS_SEED, WARM_ORDERS};
use crate::support::structures::Built;
use crate::support::timing::{race, Summary};

/// The bar: the chosen structure at most this much slower than iext16, in percent.
pub const BAR_PERCENT: f64 = 10.0;

/// One structure over one adversarial map.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Structure name (`reports structures`' names, and `chosen`).
    pub structure: String,
    /// Heap bytes, counted by the allocator while it was built.
    pub bytes: usize,
    /// `bytes / extents`.
    pub bytes_per_extent: f64,
    /// Median ns per lookup, `warm-shared`.
    pub ns_warm_shared: f64,
}

/// One adversarial map measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MapResult {
    /// Dataset name (`adv-` and the objective).
    pub map: String,
    /// Extents.
    pub extents: usize,
    /// The objective's score of the map (its unit is the objective's).
    pub score: f64,
    /// The generator that makes it (seed and phases, as `predictor::adversary::Genome`).
    pub genome: String,
    /// Every structure, then `chosen`.
    pub rows: Vec<Row>,
    /// The structure the per-file rule chose.
    pub chosen: &'static str,
    /// Its counted cache lines per lookup, and the reference tree's (the rule's cost model).
    pub chosen_lines: f64,
    /// The reference tree's.
    pub reference_lines: f64,
    /// Chosen's warm ns over iext16's.
    pub chosen_over_iext16: f64,
    /// Whether that is within [`BAR_PERCENT`].
    pub met: bool,
}

/// Builds every structure and the per-file choice over `found` once, checks their answers
/// against the sorted reference, then races them: the number of answers checked, and the
/// measurements.
pub fn evaluate(found: &Found, effort: &Effort) -> Result<(usize, MapResult)> {
    let built = build(found)?;
    let checked = check(found, &built.0)?;
    Ok((checked, measure(found, &built, effort)?))
}

/// Every raced structure built over `found`, then the chosen one, with their names; and the
/// costs behind the choice.
fn build(found: &Found) -> Result<(Vec<(&'static str, Built)>, Chosen)> {
    let (built, chosen) = crate::support::race::built(&dataset(found), true);
    let chosen = chosen.ok_or_else(|| anyhow::anyhow!("{}: no per-file choice", found.name))?;
    Ok((
        built.into_iter().map(|(name, _, b)| (name, b)).collect(),
        chosen,
    ))
}

fn dataset(found: &Found) -> Dataset {
    Dataset {
        name: found.name.clone(),
        source: Source::Synthetic,
        extents: found.extents.clone(),
        file: None,
        model: None,
    }
}

/// Races every structure and the choice on `found` (warm-shared), as [`build`] made them.
fn measure(
    found: &Found,
    (built, chosen): &(Vec<(&'static str, Built)>, Chosen),
    effort: &Effort,
) -> Result<MapResult> {
    let seed = 0x5eed ^ found.extents.len() as u64;
    let uniform = in_orders(
        &uniform_queries(&found.extents, effort.warm.batch, seed),
        WARM_ORDERS,
        seed ^ ORDERS_SEED,
    );
    let contenders: Vec<&dyn ExtentIndex> = built.iter().map(|(_, b)| b.index.as_ref()).collect();
    let warm = race(&contenders, &uniform, &effort.warm);
    let n = found.extents.len().max(1);
    let rows: Vec<Row> = built
        .iter()
        .zip(warm)
        .map(|((name, b), mut w)| Row {
            structure: name.to_string(),
            bytes: b.heap_bytes,
            bytes_per_extent: b.heap_bytes as f64 / n as f64,
            ns_warm_shared: Summary::of(&mut w).map_or(f64::NAN, |s| s.median),
        })
        .collect();
    let ns = |name: &str| {
        rows.iter()
            .find(|r| r.structure == name)
            .map_or(f64::NAN, |r| r.ns_warm_shared)
    };
    let ratio = ns("chosen") / ns(predictor::Structure::Iext16.name());
    Ok(MapResult {
        map: found.name.clone(),
        extents: found.extents.len(),
        score: found.score,
        genome: describe(&found.genome),
        chosen: chosen.chosen.structure.name(),
        chosen_lines: chosen.chosen.lines,
        reference_lines: chosen.reference.lines,
        chosen_over_iext16: ratio,
        met: ratio <= 1.0 + BAR_PERCENT / 100.0,
        rows,
    })
}

/// The genome in one line: its seed and per phase the count, hole chance and size, length,
/// unwritten share and placement.
pub fn describe(g: &Genome) -> String {
    let phases: Vec<String> = g
        .phases
        .iter()
        .map(|p| {
            format!(
                "{}x(holes {}% <2^{}, len <2^{}, {}% unwritten, {:?})",
                p.count, p.hole_percent, p.gap_bits, p.len_bits, p.unwritten_percent, p.place
            )
        })
        .collect();
    format!("seed {:#x}: {}", g.seed, phases.join(" "))
}

/// Checks every structure's answers on `found` (uniform blocks and every extent's boundaries)
/// against the sorted reference, as [`build`] made them; returns the number of answers checked.
fn check(found: &Found, built: &[(&'static str, Built)]) -> Result<usize> {
    let reference = SortedIndex::new(found.extents.clone());
    let mut blocks = uniform_queries(&found.extents, 1024, 0xc4ec);
    for e in &found.extents {
        blocks.push(e.lblk);
        blocks.push(e.lblk.saturating_sub(1));
        // OK to narrow: extents end by 2^32 - 1.
        blocks.push((e.end() - 1) as u32);
        blocks.push(u32::try_from(e.end()).unwrap_or(u32::MAX));
    }
    let mut checked = 0;
    for q in blocks {
        let want = reference.find(q);
        for (name, b) in built {
            let got = b.index.find(q);
            if got != want {
                anyhow::bail!(
                    "{}: {name} answers {got:?} at block {q}, the sorted array {want:?}",
                    found.name
                );
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// Most blocks a realisation writes (64 MiB of data): written extents beyond it are made
/// unwritten (`fallocate`), which costs the image no data blocks.
pub const KERNEL_WRITE_BLOCKS: u64 = 1 << 14;
/// Largest file system a realisation makes (a sparse image: only metadata is stored).
pub const KERNEL_FS_BYTES: u64 = 1 << 40;
/// Largest filler allocation between two extents, in blocks.
const FILLER_MAX: u64 = 1 << 12;

/// Makes `exts`' logical layout through the kernel: on a fresh 4 KiB-block ext4 image in
/// `dir` (nodelalloc, so every call allocates at once), each extent in logical order is
/// allocated in one call, `pwrite` for a written one (while the data written stays within
/// [`KERNEL_WRITE_BLOCKS`]) or `fallocate` for the rest; where the generated map jumps
/// physically, a filler file is allocated first (up to [`FILLER_MAX`] blocks), so the
/// allocator moves on as it does when other files are written in between. Holes are never
/// allocated. Returns the file's map as the image holds it (read with the `ext4` crate after
/// unmounting). Physical blocks are the allocator's: only the logical layout, the flags and
/// the places where placement breaks are the user's.
pub fn realise_on_kernel(dir: &Path, name: &str, exts: &[Extent]) -> Result<Vec<Extent>> {
    const BS: u64 = 4096;
    let data: u64 = exts.iter().map(|e| u64::from(e.len)).sum();
    let fillers = exts.len() as u64 * FILLER_MAX;
    let fs_bytes = ((data + fillers) * 9 / 8 + 65_536) * BS;
    if fs_bytes > KERNEL_FS_BYTES {
        anyhow::bail!("{name}: needs a {fs_bytes}-byte file system");
    }
    let image = dir.join(format!("{name}.img"));
    let made = (|| -> Result<Vec<Extent>> {
        let mount = imagekit::kernel::fresh_mount_nodelalloc(&image, fs_bytes)?;
        let open = |p: &str| {
            let path = mount.host_path(p);
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))
        };
        let file = open("/adv")?;
        let filler = open("/filler")?;
        let mut filler_end = 0u64;
        let mut written = 0u64;
        let buf = vec![0x5au8; 1 << 20];
        let mut prev: Option<&Extent> = None;
        for e in exts {
            let jump = prev.map_or(0, |p| e.pblk.abs_diff(p.pblk + u64::from(p.len)));
            if jump > 0 {
                let blocks = jump.min(FILLER_MAX);
                fallocate(&filler, 0, filler_end * BS, blocks * BS).context("allocating filler")?;
                filler_end += blocks;
            }
            let (off, len) = (u64::from(e.lblk) * BS, u64::from(e.len) * BS);
            if !e.unwritten && written + u64::from(e.len) <= KERNEL_WRITE_BLOCKS {
                let mut at = 0;
                while at < len {
                    let n = (len - at).min(buf.len() as u64);
                    std::os::unix::fs::FileExt::write_all_at(&file, &buf[..n as usize], off + at)
                        .context("writing an extent")?;
                    at += n;
                }
                written += u64::from(e.len);
            } else {
                fallocate(&file, libc::FALLOC_FL_KEEP_SIZE, off, len)
                    .context("fallocating an extent")?;
            }
            prev = Some(e);
        }
        file.sync_all().context("syncing")?;
        drop((file, filler));
        mount.unmount()?;
        let fs =
            ext4::Fs::open_path(&image).with_context(|| format!("opening {}", image.display()))?;
        let inode = fs.lookup_path("/adv")?;
        Ok(fs.extents(&inode)?)
    })();
    let _ = std::fs::remove_file(&image);
    made
}

fn fallocate(file: &std::fs::File, mode: i32, off: u64, len: u64) -> std::io::Result<()> {
    let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
        return Err(std::io::Error::other("offset past i64"));
    };
    // SAFETY: `file` is open for writing for the duration of the call.
    if unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use predictor::adversary::{worst_maps, Budget};

    #[test]
    fn every_structure_answers_as_the_sorted_array_on_the_worst_maps() {
        let maps = worst_maps(5, Budget::QUICK);
        assert_eq!(maps.len(), predictor::adversary::Objective::ALL.len());
        let mut checked = 0;
        for found in &maps {
            let (n, r) = evaluate(found, &Effort::quick()).unwrap();
            checked += n;
            assert!(r.rows.iter().any(|row| row.structure == "chosen"));
            assert!(r.rows.iter().any(|row| row.structure == "iext16"));
        }
        assert!(checked > 0);
    }
}
