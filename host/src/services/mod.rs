//! Services plugins call by name: the registrar (`save`, `lookup`) over the
//! user location store, digest authentication (`auth`) over a subscriber
//! directory, and `exec` of the programs a manifest grants.
//!
//! They act through a [`Services`] handle: user location, and the
//! transaction layer that decides how a request is answered.

pub mod auth;
pub mod exec;
pub mod registrar;
pub mod usrloc;
mod usrloc_sync;

use std::sync::Arc;

use crate::config::AuthConfig;
use crate::tm::Tm;
use auth::{AuthService, NoSubscribers};
use usrloc::Usrloc;

/// What the services act with.
pub struct Services {
    usrloc: Usrloc,
    tm: Arc<Tm>,
    auth: AuthService,
}

impl Services {
    /// Services with digest authentication over nobody (every authorize
    /// finds an unknown user) until [`with_auth`](Self::with_auth).
    pub fn new(usrloc: Usrloc, tm: Arc<Tm>) -> Self {
        let auth = AuthService::new(&AuthConfig::default(), Arc::new(NoSubscribers));
        Services { usrloc, tm, auth }
    }

    /// The same services with `auth` for the auth host functions.
    pub fn with_auth(mut self, auth: AuthService) -> Self {
        self.auth = auth;
        self
    }

    pub fn auth(&self) -> &AuthService {
        &self.auth
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
