//! WHIP and WHEP request bodies (SDP offers) through the edge's HTTP router, on a real edge in this process. The body lives in
//! `geomesh_edge::fuzz` so that the stable test (`tests/fuzz.rs`) runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geomesh_edge::fuzz::whip_whep(data);
});
