#![no_main]
//! cargo-fuzz entry of `targets/callback.rs` (the body and its properties live there).

#[path = "../targets/callback.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
