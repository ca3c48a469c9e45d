//! `mozaiks:plugin/secrets`: a plugin's own declared secrets, from the
//! [`crate::SecretStore`] port; every value handed out is redacted from the
//! call's output from then on.

use crate::bindings::secrets::Host;
use crate::state::CallState;

impl Host for CallState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Option<String>, String>> {
        let Some(declared) = self.declared_secrets.get(&name) else {
            return Ok(Err(format!(
                "`{name}` is not a secret of plugin `{}`: declare it as [secrets.{name}] in its \
                 plugin.toml",
                self.scope.plugin
            )));
        };
        match self.ports.secrets.secret(&self.scope.plugin, &name) {
            Some(value) => {
                self.redactor.add(&name, &value);
                Ok(Ok(Some(value)))
            }
            None if declared.required => Ok(Err(format!(
                "the required secret `{name}` of plugin `{}` has no value: the server's \
                 operator sets it (docs/operations.md, plugin secrets)",
                self.scope.plugin
            ))),
            None => Ok(Ok(None)),
        }
    }
}
