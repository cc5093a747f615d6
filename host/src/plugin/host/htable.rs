//! `wisp:router/htable`: `sht-get`, `sht-set`, `sht-inc`, `sht-rm` over the
//! manifest's `[[htable]]`s (`services::htable`).

use super::{HostError, PluginState};
use crate::plugin::bindings::WitError;
use crate::plugin::bindings::wisp::router::htable::{self, ShtValue as WitValue};
use crate::services::htable::{HtableError, ShtValue};

impl htable::Host for PluginState {
    fn sht_get(&mut self, table: String, key: String) -> Result<Option<WitValue>, HostError> {
        let value = self
            .host
            .services
            .htables()
            .get(&table, &key)
            .map_err(refused)?;
        Ok(value.map(|v| match v {
            ShtValue::Int(n) => WitValue::Int(n),
            ShtValue::Str(s) => WitValue::Str(s.to_string()),
        }))
    }

    fn sht_set(&mut self, table: String, key: String, value: WitValue) -> Result<(), HostError> {
        let value = match value {
            WitValue::Int(n) => ShtValue::Int(n),
            WitValue::Str(s) => ShtValue::Str(s.into()),
        };
        self.host
            .services
            .htables()
            .set(&table, &key, value)
            .map_err(refused)
    }

    fn sht_inc(&mut self, table: String, key: String, delta: i64) -> Result<i64, HostError> {
        self.host
            .services
            .htables()
            .inc(&table, &key, delta)
            .map_err(refused)
    }

    fn sht_rm(&mut self, table: String, key: String) -> Result<bool, HostError> {
        self.host
            .services
            .htables()
            .remove(&table, &key)
            .map_err(refused)
    }
}

fn refused(e: HtableError) -> HostError {
    HostError::Guest(WitError::InvalidArgument(e.to_string()))
}
