//! RTP from a publisher, as a recorder receives it over octo, through the
//! source recorder into a real WebM file. The body lives in
//! `geomesh_recorder::fuzz` so that the stable test (`tests/fuzz.rs`) runs
//! it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geomesh_recorder::fuzz::recorder_media(data);
});
