//! The stable replay of a fuzz target's committed corpus and crash reproducers, shared by the
//! `tests/fuzz_corpus.rs` of each crate that has fuzz targets (included with `#[path]`: the
//! crates' tests share no dependency for it).

use std::path::Path;

/// Runs `body` on every file of the target's corpus and artifacts; fails when the corpus is
/// empty (a replay of nothing proves nothing).
pub fn replay(crate_dir: &str, target: &str, body: fn(&[u8])) {
    let root = Path::new(crate_dir).join("fuzz");
    let mut count = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("artifacts").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(
                result.is_ok(),
                "{target}: {} breaks a property",
                path.display()
            );
            count += 1;
        }
    }
    assert!(count > 0, "{target}: no corpus under {}", root.display());
}
