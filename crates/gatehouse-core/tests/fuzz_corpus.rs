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

#[path = "../fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn jwt_corpus_keeps_its_properties() {
    replay(env!("CARGO_MANIFEST_DIR"), "jwt", jwt::run);
}

#[test]
fn claims_corpus_keeps_its_properties() {
    replay(env!("CARGO_MANIFEST_DIR"), "claims", claims::run);
}

#[test]
fn request_info_corpus_keeps_its_properties() {
    replay(
        env!("CARGO_MANIFEST_DIR"),
        "request_info",
        request_info::run,
    );
}

#[test]
fn annotations_corpus_keeps_its_properties() {
    replay(env!("CARGO_MANIFEST_DIR"), "annotations", annotations::run);
}

#[test]
fn authorize_corpus_keeps_its_properties() {
    replay(env!("CARGO_MANIFEST_DIR"), "authorize", authorize::run);
}
