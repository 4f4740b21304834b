//! Replays the committed fuzz corpora of gatehouse-server (`fuzz/corpus/<target>/`) through the
//! same bodies the cargo-fuzz targets run (`fuzz/targets/<target>.rs`), on the stable toolchain,
//! as ordinary tests; crash reproducers (`fuzz/artifacts/<target>/`) too, when any. Fuzzing
//! itself is `cargo +nightly fuzz run <target>` in `crates/gatehouse-server/fuzz`
//! (docs/security-testing.md).
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/targets/config.rs"]
mod config;
#[path = "../../gatehouse-core/fuzz/replay.rs"]
mod replay;
#[path = "../fuzz/targets/session_cookie.rs"]
mod session_cookie;

use replay::replay;

#[test]
fn session_cookie_corpus_keeps_its_properties() {
    replay(
        env!("CARGO_MANIFEST_DIR"),
        "session_cookie",
        session_cookie::run,
    );
}

#[test]
fn config_corpus_keeps_its_properties() {
    replay(env!("CARGO_MANIFEST_DIR"), "config", config::run);
}
