#![no_main]
//! cargo-fuzz entry of `targets/kubeconfig.rs` (the body and its properties live there).

#[path = "../targets/kubeconfig.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
