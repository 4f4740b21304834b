#![no_main]
//! cargo-fuzz entry of `targets/request_info.rs` (the body and its properties live there).

#[path = "../targets/request_info.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
