//! The stateless core (Kamailio core + `sl` + `maxfwd` + `rr`): replies, forwarding
//! of requests and of responses along Via, Max-Forwards, `myself`, and the
//! sanity checks a request passes before any plugin sees it.

pub mod forward;
pub mod maxfwd;
pub mod myself;
pub mod reply;
pub mod rr;
pub mod sanity;
