//! Services plugins call by name: the registrar (`save`, `lookup`) over the
//! user location store, digest authentication (`auth`) over a subscriber
//! directory, `exec` of the programs a manifest grants, per-source flood
//! detection (`pike`), shared tables (`htable`) and the keepalives of
//! contacts behind NAT (`keepalive`).
//!
//! They act through a [`Services`] handle: user location, and the
//! transaction layer that decides how a request is answered.

pub mod acc;
pub mod auth;
pub mod exec;
pub mod htable;
pub mod keepalive;
pub mod pike;
pub mod registrar;
pub mod rtpengine;
pub mod usrloc;
mod usrloc_sync;

use std::sync::Arc;

use crate::config::{AuthConfig, HtableConfig, PikeConfig};
use crate::tm::Tm;
use auth::{AuthService, NoSubscribers};
use htable::Htables;
use pike::Pike;
use usrloc::Usrloc;

/// What the services act with.
pub struct Services {
    usrloc: Usrloc,
    tm: Arc<Tm>,
    auth: AuthService,
    pike: Pike,
    htables: Htables,
    /// The accounting log, when `[acc]` names a flag.
    acc: Option<Arc<acc::AccLog>>,
}

impl Services {
    /// Services with digest authentication over nobody (every authorize
    /// finds an unknown user) until [`with_auth`](Self::with_auth).
    pub fn new(usrloc: Usrloc, tm: Arc<Tm>) -> Self {
        let auth = AuthService::new(&AuthConfig::default(), Arc::new(NoSubscribers));
        Services {
            usrloc,
            tm,
            auth,
            pike: Pike::new(&PikeConfig::default()),
            htables: Htables::default(),
            acc: None,
        }
    }

    /// The same services with `[pike]` and `[[htable]]` from the manifest.
    pub fn with_limits(mut self, pike: &PikeConfig, htables: &[HtableConfig]) -> Self {
        self.pike = Pike::new(pike);
        self.htables = Htables::new(htables);
        self
    }

    /// Per-source flood detection (`pike-check-req`).
    pub fn pike(&self) -> &Pike {
        &self.pike
    }

    /// The manifest's `[[htable]]`s.
    pub fn htables(&self) -> &Htables {
        &self.htables
    }

    /// The same services with `auth` for the auth host functions.
    pub fn with_auth(mut self, auth: AuthService) -> Self {
        self.auth = auth;
        self
    }

    /// The same services with `log` as the accounting log.
    pub fn with_acc(mut self, log: Arc<acc::AccLog>) -> Self {
        self.acc = Some(log);
        self
    }

    pub fn acc(&self) -> Option<&Arc<acc::AccLog>> {
        self.acc.as_ref()
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
