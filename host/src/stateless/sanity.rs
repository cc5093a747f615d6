//! Checks a request passes before routing (`wisp_sip::sanity`, where the
//! fuzz targets reach them too): a failure is answered 400 with the reason.

pub use wisp_sip::sanity::{RequestSummary, check_request};
