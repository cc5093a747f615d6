//! `wisp:router/auth`: digest authentication, over the auth service.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::auth::{self, AuthResult, UserOf};
use crate::services::auth::service::{self as service, Kind, Outcome};
use crate::tm::RouteContext;

fn result(o: Outcome) -> AuthResult {
    match o {
        Outcome::Ok => AuthResult::Ok,
        Outcome::NoCredentials => AuthResult::NoCredentials,
        Outcome::Malformed => AuthResult::Malformed,
        Outcome::InvalidNonce => AuthResult::InvalidNonce,
        Outcome::StaleNonce => AuthResult::StaleNonce,
        Outcome::UnknownUser => AuthResult::UnknownUser,
        Outcome::WrongResponse => AuthResult::WrongResponse,
        Outcome::Replayed => AuthResult::Replayed,
    }
}

impl PluginState {
    fn digest_authorize(
        &mut self,
        m: &Resource<RouteContext>,
        kind: Kind,
        realm: &str,
        table: &str,
    ) -> Result<AuthResult, HostError> {
        let found = self.with_msg(m, |host, ctx| {
            host.services.auth().authorize(ctx, kind, realm, table)
        })??;
        Ok(result(found))
    }

    fn digest_challenge(
        &mut self,
        m: &Resource<RouteContext>,
        kind: Kind,
        realm: &str,
        flags: u32,
    ) -> Result<(), HostError> {
        Ok(self.with_msg(m, |host, ctx| {
            let svc = &host.services;
            svc.auth().challenge(svc.tm(), ctx, kind, realm, flags)
        })??)
    }
}

impl auth::Host for PluginState {
    fn www_authorize(
        &mut self,
        m: Resource<RouteContext>,
        realm: String,
        table: String,
    ) -> Result<AuthResult, HostError> {
        self.digest_authorize(&m, Kind::Www, &realm, &table)
    }

    fn proxy_authorize(
        &mut self,
        m: Resource<RouteContext>,
        realm: String,
        table: String,
    ) -> Result<AuthResult, HostError> {
        self.digest_authorize(&m, Kind::Proxy, &realm, &table)
    }

    fn www_challenge(
        &mut self,
        m: Resource<RouteContext>,
        realm: String,
        flags: u32,
    ) -> Result<(), HostError> {
        self.digest_challenge(&m, Kind::Www, &realm, flags)
    }

    fn proxy_challenge(
        &mut self,
        m: Resource<RouteContext>,
        realm: String,
        flags: u32,
    ) -> Result<(), HostError> {
        self.digest_challenge(&m, Kind::Proxy, &realm, flags)
    }

    fn consume_credentials(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        Ok(service::consume_credentials(self.msg(&m)?)?)
    }

    fn check_to(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<bool> {
        Ok(service::check_party(self.msg(&m)?, true).unwrap_or(false))
    }

    fn check_from(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<bool> {
        Ok(service::check_party(self.msg(&m)?, false).unwrap_or(false))
    }

    fn is_user_in(
        &mut self,
        m: Resource<RouteContext>,
        which: UserOf,
        group: String,
    ) -> wasmtime::Result<bool> {
        let which = match which {
            UserOf::RequestUri => service::UserOf::RequestUri,
            UserOf::To => service::UserOf::To,
            UserOf::From => service::UserOf::From,
            UserOf::Credentials => service::UserOf::Credentials,
        };
        Ok(self.with_msg(&m, |host, ctx| {
            host.services
                .auth()
                .is_user_in(ctx, which, &group)
                .unwrap_or(false)
        })?)
    }
}
