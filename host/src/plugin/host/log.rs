//! `wisp:router/log`: plugin log lines go to the router's log, tagged with
//! the plugin's name and build and the Call-ID of the message the route
//! works on (Kamailio's `xlog` lines carry whatever the script put in them;
//! these carry what an operator greps for).

use super::PluginState;
use crate::plugin::bindings::wisp::router::log;
use crate::plugin::bindings::{LogLevel, WitError};

impl log::Host for PluginState {
    fn log(&mut self, level: LogLevel, text: String) -> wasmtime::Result<()> {
        let plugin = &*self.plugin_name;
        let version = &*self.plugin_version;
        let call_id = String::from_utf8_lossy(self.call_id());
        match level {
            LogLevel::Error => tracing::error!(plugin, version, %call_id, "{text}"),
            LogLevel::Warn => tracing::warn!(plugin, version, %call_id, "{text}"),
            LogLevel::Info => tracing::info!(plugin, version, %call_id, "{text}"),
            LogLevel::Debug => tracing::debug!(plugin, version, %call_id, "{text}"),
            LogLevel::Trace => tracing::trace!(plugin, version, %call_id, "{text}"),
        }
        Ok(())
    }

    fn route_error(&mut self, e: WitError) -> wasmtime::Result<()> {
        self.route_error = Some(e);
        Ok(())
    }
}
