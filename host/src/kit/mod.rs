//! The plugin developer's kit: `wisp new` (a plugin crate from a template),
//! `wisp build` (the crate into a component, with the recipe `make plugins`
//! uses), `wisp test` (the component in the real host, on a virtual network
//! and clock, against case files) and `wisp replay` (captured requests
//! through a plugin, printing each decision; two builds compared).
//!
//! The top layer: it builds a [`Router`](crate::router::Router) on a
//! virtual network ([`harness`]) and drives it as the transports would.

pub mod build;
pub mod case;
pub mod harness;
pub mod new;
pub mod replay;

pub use case::{Case, CaseReport, run_case_file, run_cases};
pub use harness::{Harness, Sent};
