//! Replays the committed fuzz corpora of the CLI (`fuzz/corpus/<target>/`) through the same
//! bodies the cargo-fuzz targets run (`fuzz/targets/<target>.rs`), on the stable toolchain, as
//! ordinary tests; crash reproducers (`fuzz/artifacts/<target>/`) too, when any. Fuzzing itself
//! is `cargo +nightly fuzz run <target>` in `crates/gatehouse/fuzz` (docs/security-testing.md).
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/targets/kubeconfig.rs"]
mod kubeconfig;

use std::path::Path;

/// Runs `body` on every file of the target's corpus and artifacts; fails when the corpus is
/// empty (a replay of nothing proves nothing).
fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
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

#[test]
fn kubeconfig_corpus_keeps_its_properties() {
    replay("kubeconfig", kubeconfig::run);
}
