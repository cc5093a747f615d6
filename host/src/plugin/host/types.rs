//! `wisp:router/types`: turns a [`HostError`] into the WIT error or a trap.

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::types;

impl types::Host for PluginState {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<types::Error> {
        match err {
            HostError::Guest(e) => Ok(e),
            HostError::Trap(t) => Err(t),
        }
    }
}
