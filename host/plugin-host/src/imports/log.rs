//! `mozaiks:plugin/log`: records tagged with the call's plugin, function and chat.

use crate::bindings::log::{Host, Level};
use crate::ports::{LogLevel, LogRecord, LogSource};
use crate::state::CallState;

/// Longest message kept from one record; the rest is cut so a tool cannot
/// flood the logs through this import.
const MAX_LOG_MESSAGE_BYTES: usize = 16 * 1024;

impl Host for CallState {
    async fn log(
        &mut self,
        level: Level,
        mut message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        if message.len() > MAX_LOG_MESSAGE_BYTES {
            let mut cut = MAX_LOG_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
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
            fields: fields.into_iter().collect(),
        });
        Ok(())
    }
}
