#![no_main]
//! cargo-fuzz entry of `targets/jwt.rs` (the body and its properties live there).

#[path = "../targets/jwt.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
