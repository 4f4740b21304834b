#![no_main]
//! cargo-fuzz entry of `targets/session_cookie.rs` (the body and its properties live there).

#[path = "../targets/session_cookie.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
