//! `wisp:router/log`: plugin log lines go to the router's log, tagged with
//! the plugin's name.

use super::PluginState;
use crate::plugin::bindings::wisp::router::log;
use crate::plugin::bindings::{LogLevel, WitError};

impl log::Host for PluginState {
    fn log(&mut self, level: LogLevel, text: String) -> wasmtime::Result<()> {
        let plugin = &*self.plugin_name;
        match level {
            LogLevel::Error => tracing::error!(plugin, "{text}"),
            LogLevel::Warn => tracing::warn!(plugin, "{text}"),
            LogLevel::Info => tracing::info!(plugin, "{text}"),
            LogLevel::Debug => tracing::debug!(plugin, "{text}"),
            LogLevel::Trace => tracing::trace!(plugin, "{text}"),
        }
        Ok(())
    }

    fn route_error(&mut self, e: WitError) -> wasmtime::Result<()> {
        self.route_error = Some(e);
        Ok(())
    }
}
