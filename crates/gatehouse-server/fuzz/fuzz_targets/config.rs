#![no_main]
//! cargo-fuzz entry of `targets/config.rs` (the body and its properties live there).

#[path = "../targets/config.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
