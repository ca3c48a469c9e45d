//! One call: fresh `Store`, instantiate from the `InstancePre`, invoke, and
//! turn whatever happened into either the tool's result or a [`CallError`].

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::backtrace::{self, RECURSION_RUN};
use crate::bindings::{Plugin as WitPlugin, PluginPre, types};
use crate::component::Plugin;
use crate::engine::{PluginEngine, SlotGuard};
use crate::error::CallError;
use crate::imports::HostFailure;
use crate::limits::{
    CpuBudget, MAX_ARGUMENTS_BYTES, MAX_TOOL_ERROR_BYTES, MIB, MemoryLimiter, cut,
};
use crate::manifest::Limits;
use crate::outbound::send::OutboundCall;
use crate::policy::SandboxPolicy;
use crate::ports::{CallInfo, LogLevel, LogRecord, LogSource, Ports};
use crate::redact::Redactor;
use crate::state::{CallScope, CallState};
use crate::stdio::Capture;
use crate::tool_error::ToolError;

/// What a call produced when the guest ran to completion: the tool's JSON
/// result, or the failure the tool itself reported.
pub type ToolOutcome = Result<Value, ToolError>;

/// How much of the guest's stderr is kept in a trap error: enough for a Rust
/// panic message and its location.
const STDERR_TAIL_BYTES: usize = 4096;

/// Raised by the epoch callback when the CPU budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("CPU deadline exceeded")]
struct DeadlineHit;

/// Everything needed to run one export of one plugin.
pub(crate) struct Invocation<'a> {
    pub(crate) engine: &'a PluginEngine,
    pub(crate) plugin: &'a Arc<str>,
    pub(crate) function: &'a str,
    pub(crate) limits: &'a Limits,
    pub(crate) manifest_path: Option<&'a Path>,
    pub(crate) policy: &'a SandboxPolicy,
    pub(crate) pre: &'a PluginPre<CallState>,
    pub(crate) info: CallInfo,
    pub(crate) ports: Ports,
}

/// A live instance for one call.
pub(crate) struct Prepared {
    pub(crate) store: Store<CallState>,
    pub(crate) bindings: WitPlugin,
    /// The plugin's share of the pool this call holds until it ends.
    _slot: SlotGuard,
}

impl Invocation<'_> {
    fn error_scope(&self) -> (String, String) {
        (self.plugin.to_string(), self.function.to_owned())
    }

    /// Creates the store with the sandbox and limits, and instantiates.
    pub(crate) async fn prepare(&self) -> Result<Prepared, CallError> {
        let (plugin, function) = self.error_scope();
        let slot = self
            .engine
            .slots
            .take(self.plugin)
            .map_err(|cause| CallError::Busy {
                plugin: plugin.clone(),
                function: function.clone(),
                cause,
            })?;
        let stdout = Capture::default();
        let stderr = Capture::default();
        let denied_connects = Arc::new(Mutex::new(Vec::new()));
        let wasi = self
            .policy
            .wasi_ctx(stdout.clone(), stderr.clone(), Arc::clone(&denied_connects))
            .map_err(|e| CallError::Host {
                plugin: plugin.clone(),
                function: function.clone(),
                cause: format!("setting up the sandbox: {e}"),
            })?;
        let outbound = OutboundCall::new(
            Arc::clone(self.policy.outbound()),
            self.engine.tls.clone(),
            Arc::clone(&denied_connects),
            &self.ports,
            (plugin.clone(), function.clone(), self.info.chat_id.clone()),
        );
        let network = outbound.clock();
        let state = CallState {
            wasi,
            table: Default::default(),
            limiter: MemoryLimiter::new(self.limits.memory_mib),
            budget: CpuBudget::new(Duration::from_millis(u64::from(self.limits.deadline_ms))),
            scope: CallScope {
                plugin: Arc::clone(self.plugin),
                function: function.clone(),
                info: self.info.clone(),
            },
            ports: self.ports.clone(),
            stdout,
            stderr,
            denied_connects,
            ui: Default::default(),
            log_records: 0,
            context: Default::default(),
            http: WasiHttpCtx::new(),
            outbound,
            network,
            declared_secrets: Arc::clone(self.policy.secrets()),
            redactor: Redactor::default(),
            data_ops: 0,
        };
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            if state.budget.exhausted_besides(state.network.waited()) {
                Err(wasmtime::Error::new(DeadlineHit))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        match self.pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(Prepared {
                store,
                bindings,
                _slot: slot,
            }),
            Err(e) if e.is::<wasmtime::PoolConcurrencyLimitError>() => Err(CallError::Busy {
                plugin,
                function,
                cause: format!("{e:#}"),
            }),
            Err(e) => Err(self.map_failure(e, &mut store)),
        }
    }

    /// Sends the guest's stdout/stderr to the log sink and maps a failed
    /// invocation into a [`CallError`].
    pub(crate) fn finish<R>(
        &self,
        prepared: &mut Prepared,
        result: wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        match result {
            Ok(value) => {
                self.drain_output(&prepared.store);
                Ok(value)
            }
            Err(e) => Err(self.map_failure(e, &mut prepared.store)),
        }
    }

    fn drain_output(&self, store: &Store<CallState>) -> String {
        let state = store.data();
        let (out, out_dropped) = state.stdout.take();
        let (err, err_dropped) = state.stderr.take();
        let (out, err) = (state.redactor.apply(&out), state.redactor.apply(&err));
        let sink = &state.ports.log;
        let record = |level, source, message: String| LogRecord {
            plugin: self.plugin.to_string(),
            function: self.function.to_owned(),
            chat_id: self.info.chat_id.clone(),
            level,
            source,
            message,
            fields: Default::default(),
        };
        for (text, dropped, level, source) in [
            (&out, out_dropped, LogLevel::Info, LogSource::Stdout),
            (&err, err_dropped, LogLevel::Warn, LogSource::Stderr),
        ] {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                sink.log(record(level, source, line.to_owned()));
            }
            if dropped > 0 {
                sink.log(record(
                    LogLevel::Warn,
                    source,
                    format!("{dropped} more bytes of output were dropped"),
                ));
            }
        }
        err
    }

    fn map_failure(&self, error: wasmtime::Error, store: &mut Store<CallState>) -> CallError {
        let stderr = self.drain_output(store);
        let (plugin, function) = self.error_scope();
        let state = store.data();
        if error.is::<DeadlineHit>() {
            return CallError::DeadlineExceeded {
                plugin,
                function,
                deadline: state.budget.deadline(),
            };
        }
        if let Some(HostFailure(cause)) = error.downcast_ref::<HostFailure>() {
            return CallError::Host {
                plugin,
                function,
                cause: cause.clone(),
            };
        }
        if let Some(requested) = state.limiter.refused {
            return CallError::MemoryLimit {
                plugin,
                function,
                limit_mib: self.limits.memory_mib,
                requested_mib: requested.div_ceil(MIB),
            };
        }
        let backtrace = error
            .downcast_ref::<WasmBacktrace>()
            .map(backtrace::render)
            .unwrap_or_default();
        let cause = if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            format!("the tool called exit({})", exit.0)
        } else if let Some(trap) = error.downcast_ref::<Trap>() {
            match trap {
                Trap::StackOverflow => "stack overflow (call stack exhausted)".to_owned(),
                Trap::UnreachableCodeReached => {
                    "the guest aborted (a Rust panic or `unreachable`)".to_owned()
                }
                // Rust guests keep their stack in linear memory: overflowing it
                // shows up as an out-of-bounds access deep in a recursion.
                Trap::MemoryOutOfBounds if backtrace.longest_run >= RECURSION_RUN => {
                    format!("stack overflow (runaway recursion; {trap})")
                }
                other => other.to_string(),
            }
        } else {
            format!("{:#}", error.root_cause())
        };
        CallError::Trap {
            plugin,
            function,
            cause,
            guest_stderr: tail(&stderr, STDERR_TAIL_BYTES),
            backtrace: backtrace.text,
        }
    }

    fn denied_connects(&self, store: &Store<CallState>) -> Vec<String> {
        store
            .data()
            .denied_connects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn manifest_hint(&self) -> String {
        match self.manifest_path {
            Some(path) => path.display().to_string(),
            None => format!("the plugin.toml of `{}`", self.plugin),
        }
    }
}

/// The tool's own error with its message cut to `max` bytes.
fn cut_tool_error(error: types::ToolError, max: usize) -> types::ToolError {
    use types::ToolError as E;
    let cut_to = |mut message: String| {
        cut(&mut message, max);
        message
    };
    match error {
        E::UnknownFunction(m) => E::UnknownFunction(cut_to(m)),
        E::InvalidArguments(m) => E::InvalidArguments(cut_to(m)),
        E::Denied(m) => E::Denied(cut_to(m)),
        E::Cancelled(m) => E::Cancelled(cut_to(m)),
        E::Failed(m) => E::Failed(cut_to(m)),
    }
}

/// The tool's own error with the call's secrets masked.
fn redact_tool_error(error: types::ToolError, redactor: &Redactor) -> types::ToolError {
    use types::ToolError as E;
    let r = |m: String| redactor.apply(&m);
    match error {
        E::UnknownFunction(m) => E::UnknownFunction(r(m)),
        E::InvalidArguments(m) => E::InvalidArguments(r(m)),
        E::Denied(m) => E::Denied(r(m)),
        E::Cancelled(m) => E::Cancelled(r(m)),
        E::Failed(m) => E::Failed(r(m)),
    }
}

fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.get(start..).unwrap_or_default().to_owned()
}

impl Plugin {
    /// Calls `function` with `arguments` (JSON object text) on behalf of `info`.
    ///
    /// The arguments are parsed and checked against the function's schema
    /// before any guest code runs. The call gets a fresh instance with the
    /// plugin's sandbox and limits, and `ports` for its imports.
    ///
    /// Returns `Ok(Ok(json))` on success, `Ok(Err(tool_error))` when the tool
    /// reported its own failure, and `Err(CallError)` when the call did not
    /// complete (trap, deadline, memory, denial, bad output, ...).
    pub async fn call(
        &self,
        function: &str,
        arguments: &str,
        info: CallInfo,
        ports: Ports,
    ) -> Result<ToolOutcome, CallError> {
        let inner = &self.inner;
        let plugin = inner.id.to_string();
        let Some(spec) = self.find(function) else {
            return Err(CallError::UnknownFunction {
                plugin,
                function: function.to_owned(),
                available: self.function_names().join(", "),
            });
        };
        let invalid = |problems: Vec<String>| CallError::InvalidArguments {
            plugin: plugin.clone(),
            function: function.to_owned(),
            problems,
        };
        if arguments.len() > MAX_ARGUMENTS_BYTES {
            return Err(invalid(vec![format!(
                "{} bytes of arguments, more than the {MAX_ARGUMENTS_BYTES} allowed",
                arguments.len()
            )]));
        }
        let parsed: Value =
            serde_json::from_str(arguments).map_err(|e| invalid(vec![format!("not JSON: {e}")]))?;
        let problems: Vec<String> = spec
            .validator
            .iter_errors(&parsed)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("at {}: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect();
        if !problems.is_empty() {
            return Err(invalid(problems));
        }

        let invocation = Invocation {
            engine: &inner.engine,
            plugin: &inner.id,
            function,
            limits: &inner.manifest.limits,
            manifest_path: Some(&inner.manifest_path),
            policy: &inner.policy,
            pre: &inner.pre,
            info,
            ports,
        };
        let wit_info = types::CallInfo {
            chat_id: invocation.info.chat_id.clone(),
            workflow: invocation.info.workflow.clone(),
            agent: invocation.info.agent.clone(),
            tool_call_id: invocation.info.tool_call_id.clone(),
        };
        let mut prepared = invocation.prepare().await?;
        let result = prepared
            .bindings
            .mozaiks_plugin_tool()
            .call_call(&mut prepared.store, function, arguments, &wit_info)
            .await;
        let denied = invocation.denied_connects(&prepared.store);
        let outcome = invocation.finish(&mut prepared, result);
        let redactor = &prepared.store.data().redactor;
        let outcome = if redactor.is_empty() {
            outcome
        } else {
            outcome.map(|result| match result {
                Ok(text) => Ok(redactor.apply(&text)),
                Err(e) => Err(redact_tool_error(e, redactor)),
            })
        };
        let deny = |capability: String| CallError::CapabilityDenied {
            plugin: plugin.clone(),
            function: function.to_owned(),
            hint: format!(
                "grant it under [capabilities] in {}",
                invocation.manifest_hint()
            ),
            capability,
        };
        let error_limit =
            MAX_TOOL_ERROR_BYTES.min(inner.manifest.limits.max_output_kib as usize * 1024);
        let outcome = outcome.map(|result| result.map_err(|e| cut_tool_error(e, error_limit)));
        let output = match outcome {
            Ok(Ok(text)) => text,
            // The host's own record of what it refused names the grant
            // better than the tool's message does.
            Ok(Err(tool_error)) if !denied.is_empty() => {
                tracing::debug!(%plugin, function, ?tool_error, "tool failed after a denied connection");
                return Err(deny(denied.join(", ")));
            }
            Ok(Err(types::ToolError::Denied(what))) => return Err(deny(what)),
            Ok(Err(tool_error)) => return Ok(Err(ToolError::from(tool_error))),
            Err(CallError::Trap { .. }) if !denied.is_empty() => {
                return Err(deny(denied.join(", ")));
            }
            Err(e) => return Err(e),
        };
        let limit = inner.manifest.limits.max_output_kib as usize * 1024;
        if output.len() > limit {
            return Err(CallError::OutputTooLarge {
                plugin,
                function: function.to_owned(),
                size: output.len(),
                limit,
            });
        }
        match serde_json::from_str(&output) {
            Ok(value) => Ok(Ok(value)),
            Err(e) => Err(CallError::BadOutput {
                plugin,
                function: function.to_owned(),
                cause: e.to_string(),
            }),
        }
    }
}
