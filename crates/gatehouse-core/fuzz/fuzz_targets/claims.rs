#![no_main]
//! cargo-fuzz entry of `targets/claims.rs` (the body and its properties live there).

#[path = "../targets/claims.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
