//! Everything an edge reads from an octo peer: media datagrams, control
//! frames, a control stream in chunks, and a link consuming them. The body
//! lives in `geomesh_mesh::fuzz` so the stable test runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geomesh_mesh::fuzz::octo_wire(data);
});
