//! Services plugins call by name: the registrar (`save`, `lookup`) over the
//! user location store, and `exec` of the programs a manifest grants.
//!
//! They act through a [`Services`] handle: user location, and the
//! transaction layer that decides how a request is answered.

pub mod auth;
pub mod exec;
pub mod registrar;
pub mod usrloc;

use std::sync::Arc;

use crate::tm::Tm;
use usrloc::Usrloc;

/// What the services act with.
pub struct Services {
    usrloc: Usrloc,
    tm: Arc<Tm>,
}

impl Services {
    pub fn new(usrloc: Usrloc, tm: Arc<Tm>) -> Self {
        Services { usrloc, tm }
    }

    pub fn usrloc(&self) -> &Usrloc {
        &self.usrloc
    }

    /// The transaction layer: every answer a service sends goes through it
    /// ([`Tm::reply`]).
    pub fn tm(&self) -> &Arc<Tm> {
        &self.tm
    }
}
