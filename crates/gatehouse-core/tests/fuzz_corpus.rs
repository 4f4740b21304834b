//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same bodies the
//! cargo-fuzz targets run (`fuzz/targets/<target>.rs`), on the stable toolchain, as ordinary
//! tests: every input that once found a new path, and every crash reproducer
//! (`fuzz/artifacts/<target>/`, when any), keeps its properties. Fuzzing itself is
//! `cargo +nightly fuzz run <target>` in `crates/gatehouse-core/fuzz` (docs/security-testing.md).
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/targets/annotations.rs"]
mod annotations;
#[path = "../fuzz/targets/authorize.rs"]
mod authorize;
#[path = "../fuzz/targets/claims.rs"]
mod claims;
#[path = "../fuzz/targets/jwt.rs"]
mod jwt;
#[path = "../fuzz/targets/request_info.rs"]
mod request_info;

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
fn jwt_corpus_keeps_its_properties() {
    replay("jwt", jwt::run);
}

#[test]
fn claims_corpus_keeps_its_properties() {
    replay("claims", claims::run);
}

#[test]
fn request_info_corpus_keeps_its_properties() {
    replay("request_info", request_info::run);
}

#[test]
fn annotations_corpus_keeps_its_properties() {
    replay("annotations", annotations::run);
}

#[test]
fn authorize_corpus_keeps_its_properties() {
    replay("authorize", authorize::run);
}
