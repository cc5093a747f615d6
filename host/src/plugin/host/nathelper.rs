//! `wisp:router/nathelper`: NAT tests and fixes, over `stateless::nat`.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::nathelper;
use crate::stateless::nat;
use crate::tm::RouteContext;

impl nathelper::Host for PluginState {
    fn nat_uac_test(&mut self, m: Resource<RouteContext>, flags: u32) -> Result<bool, HostError> {
        Ok(nat::nat_uac_test(self.msg(&m)?, flags)?)
    }

    fn fix_nated_contact(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        Ok(nat::fix_nated_contact(self.msg(&m)?)?)
    }

    fn add_contact_alias(&mut self, m: Resource<RouteContext>) -> Result<bool, HostError> {
        Ok(nat::add_contact_alias(self.msg(&m)?)?)
    }

    fn handle_ruri_alias(&mut self, m: Resource<RouteContext>) -> Result<bool, HostError> {
        Ok(nat::handle_ruri_alias(self.msg(&m)?)?)
    }

    fn fix_nated_sdp(&mut self, m: Resource<RouteContext>, flags: u32) -> Result<(), HostError> {
        Ok(nat::fix_nated_sdp(self.msg(&m)?, flags)?)
    }
}
