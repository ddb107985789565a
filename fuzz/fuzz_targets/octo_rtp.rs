//! The RTP packets an edge reads from octo links. The body lives in
//! `geomesh_edge::fuzz` so that the stable test (`tests/fuzz.rs`) runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geomesh_edge::fuzz::octo_rtp(data);
});
