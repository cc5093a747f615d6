//! A UDP datagram: parsed, every typed header read, edited as a proxy
//! edits, serialized (which must parse again), replied to.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wisp_sip::fuzzing::message(bytes::Bytes::copy_from_slice(data), 1500);
});
