#![no_main]
//! cargo-fuzz entry of `targets/annotations.rs` (the body and its properties live there).

#[path = "../targets/annotations.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
