//! A UDP datagram down the receive path: parsed, a request through the
//! sanity checks and a stub route (reply or relay, the relayed request
//! checked again), a response forwarded along its Via.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wisp_sip::fuzzing::datagram(bytes::Bytes::copy_from_slice(data));
});
