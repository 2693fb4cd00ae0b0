fn main() {
    let img = std::env::args().nth(1).unwrap();
    let path = std::env::args().nth(2).unwrap();
    let seq = std::env::args().nth(3).is_some();
    let fs = ext4::Fs::open_path(&img).unwrap();
    let ino = fs.lookup_path(&path).unwrap();
    let exts = fs.extents(&ino).unwrap();
    let w: u32 = std::env::var("W")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let c = predictor::CompactIndex::with_params(
        &exts,
        &predictor::FitParams {
            max_window: w,
            ..Default::default()
        },
    )
    .unwrap();
    println!(
        "bytes {}",
        predictor::ExtentIndex::heap_bytes(&c) as f64 / exts.len() as f64
    );
    println!("{:?}", c.shape());
    let q = if seq {
        predictor::synth::sequential_queries(&exts, 4096, 1)
    } else {
        predictor::synth::uniform_queries(&exts, 4096, 1)
    };
    let ix: Box<dyn predictor::ExtentIndex> = Box::new(c);
    let x: Box<dyn predictor::ExtentIndex> = Box::new(predictor::XfsIextIndex::new(&exts).unwrap());
    let only = std::env::var("S").unwrap_or_default();
    for (name, ix) in [("compact", &ix), ("iext16", &x)] {
        if !only.is_empty() && only != name {
            continue;
        }
        let t = std::time::Instant::now();
        let mut acc = 0u64;
        for _ in 0..3000 {
            for &x in &q {
                if let predictor::Lookup::Found(ext4::BlockMap::Mapped(e)) = ix.find(x) {
                    acc += e.pblk;
                }
            }
        }
        println!("{name} {acc} {:?}/lookup", t.elapsed() / (3000 * 4096));
    }
}
