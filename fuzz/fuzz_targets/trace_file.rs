//! Trace files as bytes: whatever a file holds, `tables::trace::read_trace` (the Parquet
//! decoding of the `parquet` crate, then every row checked by `livefs::trace::Builder`) returns
//! a trace or an error, never a panic, a hang or a huge allocation. A trace it accepts replays
//! (`Trace::check`). Seeds: the committed real traces and a small written one.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader turns a panic of the Parquet decoder into an error (`catch_unwind`); libFuzzer's
    // hook would abort at the panic first, so it is silenced here. A panic that escapes
    // `read_trace` still ends in libfuzzer-sys' own catch, which aborts: the bug this target finds.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    // The reader takes a path, as every trace file arrives: one scratch file per process.
    let path = std::env::temp_dir().join(format!("iomap-fuzz-trace-{}.parquet", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    if let Ok(trace) = tables::trace::read_trace(&path) {
        let _ = trace.check();
    }
});
