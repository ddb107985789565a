//! Join tokens (as an edge checks them), join grants (as a selector does) and rejoin secrets. The body lives in
//! `geomesh_core::fuzz` so that the stable test (`tests/fuzz.rs`) runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geomesh_core::fuzz::tokens(data);
});
