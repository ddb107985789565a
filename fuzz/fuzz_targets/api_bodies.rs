//! The selector's public and internal API bodies through its routers, on a real one-node selector in this process. The body lives in
//! `geomesh_selector::fuzz` so that the stable test (`tests/fuzz.rs`) runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geomesh_selector::fuzz::api_bodies(data);
});
