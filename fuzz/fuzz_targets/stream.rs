//! A TCP stream: the first byte sets the size of the pieces it arrives
//! in, the rest goes through the framer and each message it cuts out is
//! parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&chunk, stream)) = data.split_first() {
        wisp_sip::fuzzing::framed(stream, chunk as usize + 1);
    }
});
