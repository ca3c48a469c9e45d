//! `mozaiks:plugin/log`: records tagged with the call's plugin, function and chat.

use crate::bindings::log::{Host, Level};
use crate::ports::{LogLevel, LogRecord, LogSource};
use crate::state::CallState;

use crate::limits::{
    MAX_LOG_FIELD_BYTES, MAX_LOG_FIELD_KEY_BYTES, MAX_LOG_FIELDS, MAX_LOG_MESSAGE_BYTES,
    MAX_LOG_RECORDS_PER_CALL, clip, cut,
};

impl Host for CallState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.log_records += 1;
        if self.log_records > MAX_LOG_RECORDS_PER_CALL + 1 {
            return Ok(());
        }
        if self.log_records == MAX_LOG_RECORDS_PER_CALL + 1 {
            self.warn(format!(
                "later log records dropped: this call already wrote \
                 {MAX_LOG_RECORDS_PER_CALL}, the most one call may write"
            ));
            return Ok(());
        }
        // Secrets go before anything is cut, so no part of one is left.
        let mut message = self.redactor.apply(&message);
        cut(&mut message, MAX_LOG_MESSAGE_BYTES);
        let redactor = &self.redactor;
        let dropped = fields.len().saturating_sub(MAX_LOG_FIELDS);
        let mut kept: std::collections::BTreeMap<String, String> = fields
            .into_iter()
            .take(MAX_LOG_FIELDS)
            .map(|(key, value)| {
                let (mut key, mut value) = (redactor.apply(&key), redactor.apply(&value));
                clip(&mut key, MAX_LOG_FIELD_KEY_BYTES);
                cut(&mut value, MAX_LOG_FIELD_BYTES);
                (key, value)
            })
            .collect();
        if dropped > 0 {
            kept.insert("fields_dropped".to_owned(), dropped.to_string());
        }
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.ports.log.log(LogRecord {
            plugin: self.scope.plugin.to_string(),
            function: self.scope.function.clone(),
            chat_id: self.scope.info.chat_id.clone(),
            level,
            source: LogSource::Log,
            message,
            fields: kept,
        });
        Ok(())
    }
}
