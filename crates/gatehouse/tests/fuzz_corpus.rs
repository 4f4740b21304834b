//! Replays the committed fuzz corpora of the CLI (`fuzz/corpus/<target>/`) through the same
//! bodies the cargo-fuzz targets run (`fuzz/targets/<target>.rs`), on the stable toolchain, as
//! ordinary tests; crash reproducers (`fuzz/artifacts/<target>/`) too, when any. Fuzzing itself
//! is `cargo +nightly fuzz run <target>` in `crates/gatehouse/fuzz` (docs/security-testing.md).
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/targets/callback.rs"]
mod callback;
#[path = "../fuzz/targets/kubeconfig.rs"]
mod kubeconfig;

#[path = "../../gatehouse-core/fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn kubeconfig_corpus_keeps_its_properties() {
    replay(env!("CARGO_MANIFEST_DIR"), "kubeconfig", kubeconfig::run);
}

#[test]
fn callback_corpus_keeps_its_properties() {
    replay(env!("CARGO_MANIFEST_DIR"), "callback", callback::run);
}
