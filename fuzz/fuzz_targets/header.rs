//! One header value through every typed parser: URI, Via, name-addr list,
//! digest credentials, CSeq, host.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wisp_sip::fuzzing::header_value(data);
});
