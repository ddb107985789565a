//! topology.yaml: parsing and validation. The body lives in
//! `geomesh_core::fuzz` so that the stable test (`tests/fuzz.rs`) runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geomesh_core::fuzz::topology_yaml(data);
});
