//! Model packs: the fuzz bytes as they are, and again with the length field and the xxh3
//! trailer fixed up so mutations reach the entry and segment parser. A pack that parses is
//! queried (both model forms) and must survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictor::model::Form;
use predictor::Pack;

fn exercise(bytes: &[u8]) {
    let Ok(pack) = Pack::from_bytes(bytes) else {
        return;
    };
    for e in pack.entries.values() {
        let m = &e.model;
        let _ = m.check_shape();
        let _ = m.max_window();
        let _ = m.kind();
        let mut qs = vec![0, 1, u32::MAX, u32::MAX / 2];
        for s in m.segments.iter().take(16) {
            qs.extend([
                s.first_key,
                s.first_key.saturating_sub(1),
                s.first_key.saturating_add(1),
            ]);
        }
        for q in qs {
            for form in [Form::Float, Form::Fixed] {
                let _ = m.window_for(q, form);
            }
        }
    }
    let again = Pack::from_bytes(&pack.to_bytes()).expect("a parsed pack re-encodes");
    assert_eq!(again.header, pack.header);
    assert_eq!(again.entries.len(), pack.entries.len());
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() >= 72 {
        let mut fixed = data.to_vec();
        let n = fixed.len();
        fixed[48..56].copy_from_slice(&(n as u64).to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&fixed[..n - 8]);
        fixed[n - 8..].copy_from_slice(&sum.to_le_bytes());
        exercise(&fixed);
    }
});
