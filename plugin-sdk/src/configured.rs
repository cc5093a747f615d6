//! Plugins that read their params once, into a value of their own.
//!
//! Kamailio reads `modparam`s once at startup; a plugin does the same in
//! [`Configured::init`], which builds the plugin's own value from its
//! [`Params`]. Every route then gets `&self`: no `static OnceLock` per
//! setting, no `unwrap_or(default)` at each use.
//!
//! ```ignore
//! use wisp_sdk::prelude::*;
//!
//! struct Hello { max_len: u32 }
//!
//! impl Configured for Hello {
//!     fn init(params: &Params) -> Result<Self, String> {
//!         Ok(Hello { max_len: params.get_or("max_len", 8192)? })
//!     }
//!     fn route(&self, msg: &Msg) -> Result {
//!         if msg.len() >= self.max_len {
//!             return msg.sl_send_reply(513, "Message too big");
//!         }
//!         msg.relay()
//!     }
//! }
//!
//! wisp_sdk::export!(Hello);
//! ```
//!
//! Every type implementing [`Configured`] is a [`Plugin`]: `export!` takes
//! either.

use std::any::Any;
use std::sync::OnceLock;

use crate::{Error, Msg, Params, Plugin, Result};

/// A plugin built from its `[plugin.params]` once per instance; its routes
/// read that value. The world's WIT comments (`wit/world.wit`) say when
/// each route runs and how its result is used.
pub trait Configured: Sized + Send + Sync + 'static {
    /// Once per instance, with the `[plugin.params]` table; `Err` refuses the
    /// load, naming what was wrong (WIT export `init`).
    fn init(params: &Params) -> core::result::Result<Self, String>;

    /// Kamailio `request_route` (WIT export `route`).
    fn route(&self, msg: &Msg) -> Result;

    /// Kamailio `failure_route[name]` (WIT export `failure-route`). Default:
    /// do nothing, so the best reply goes upstream.
    fn failure_route(&self, _name: &str, _msg: &Msg) -> Result {
        Ok(())
    }

    /// Kamailio `onreply_route[name]` (WIT export `onreply-route`). Default:
    /// let the reply pass.
    fn onreply_route(&self, _name: &str, _msg: &Msg) -> Result {
        Ok(())
    }
}

/// The one plugin value of this instance (a component holds one plugin).
static INSTANCE: OnceLock<Box<dyn Any + Send + Sync>> = OnceLock::new();

fn instance<T: Configured>() -> Result<&'static T> {
    INSTANCE
        .get()
        .and_then(|b| b.downcast_ref::<T>())
        .ok_or_else(|| Error::Internal("plugin route called before its init".into()))
}

impl<T: Configured> Plugin for T {
    fn init(params: &Params) -> core::result::Result<(), String> {
        let value = <T as Configured>::init(params)?;
        // init runs once per instance; a second call keeps the first value.
        let _ = INSTANCE.set(Box::new(value));
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        <T as Configured>::route(instance::<T>()?, msg)
    }

    fn failure_route(name: &str, msg: &Msg) -> Result {
        <T as Configured>::failure_route(instance::<T>()?, name, msg)
    }

    fn onreply_route(name: &str, msg: &Msg) -> Result {
        <T as Configured>::onreply_route(instance::<T>()?, name, msg)
    }
}
