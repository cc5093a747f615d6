//! Kamailio `htable`: named tables of integers and strings shared by every
//! plugin, declared as `[[htable]]` in the manifest (WIT `htable`, whose
//! comments are the reference).
//!
//! ```ignore
//! use wisp_sdk::htable::{self, ShtValue};
//! // $sht(ipban=>$si) = 1;
//! htable::sht_set("ipban", &msg.src_ip(), &ShtValue::Int(1))?;
//! // if ($sht(ipban=>$si) != $null) { exit; }
//! if htable::sht_get("ipban", &msg.src_ip())?.is_some() { return msg.drop_request(); }
//! ```

/// What an item holds (WIT variant `htable.sht-value`).
#[doc(inline)]
pub use crate::bindings::wisp::router::htable::ShtValue;
#[doc(inline)]
pub use crate::bindings::wisp::router::htable::{sht_get, sht_inc, sht_rm, sht_set};
