//! One agent's turn: the LLM call (streamed, with a structured-output
//! retry), the tool rounds it asks for, and what its output sets or shows.

use std::sync::Arc;

use serde_json::Value;

use super::{MAX_TOOL_ROUNDS_PER_TURN, RequestDefaults, Run, RunError, chat_request_with};
use crate::event::{CallOrigin, ErrorCode, Event, HandoffReason, ToolCallRecord, ToolFailureKind};
use crate::llm::{ChatMessage, ChatRequest};
use crate::orchestrator::handoff::{self, Decision, Scope};
use crate::orchestrator::history::{self, Position, TurnStep};
use crate::orchestrator::hooks;
use crate::orchestrator::structured::STRUCTURED_OUTPUT_RETRIES;
use crate::orchestrator::tools::{self, ToolReport};
use crate::orchestrator::triggers;
use crate::workflow::model::{Agent, LifecycleTrigger, Target, Tool};

/// What tells the chat's clients of each retry of an LLM call of `agent`
/// (an ephemeral `llm_retry` event).
pub(super) fn retry_reporter(
    live: &Arc<crate::orchestrator::live::LiveChat>,
    agent: &str,
) -> impl FnMut(&crate::llm::LlmRetry) + Send + use<> {
    let live = Arc::clone(live);
    let agent = agent.to_owned();
    move |retry| {
        live.send_ephemeral(Event::LlmRetry {
            agent: agent.clone(),
            attempt: retry.attempt,
            max_retries: retry.max_retries,
            code: retry.error.code(),
            status: retry.error.status(),
            delay_ms: u64::try_from(retry.delay.as_millis()).unwrap_or(u64::MAX),
            message: retry.error.to_string(),
        });
    }
}

impl Run {
    pub(super) async fn call_llm(&mut self, agent: &Agent) -> Result<(), RunError> {
        let mut request = self.request_for(agent).await?;
        self.add_agent_state(agent, &mut request).await?;
        let model = request.model.clone();
        let live = Arc::clone(&self.live);
        let name = agent.name.clone();
        // Not streamed: a reply a hook may rewrite (the deltas would show
        // what the hook removes), and an agent with a `ui_hidden` trigger (a
        // delta would show the token before the whole message is known).
        let streamed = !hooks::rewrites_messages(&self.workflow, &agent.name)
            && !triggers::hides_text(self.workflow.context_variables(), &agent.name);
        let mut on_delta = |delta: &str| {
            if streamed {
                live.send_ephemeral(Event::TextDelta {
                    agent: name.clone(),
                    delta: delta.to_owned(),
                });
            }
        };
        let mut on_retry = retry_reporter(&live, &agent.name);
        let llm = self.shared.llm.clone();
        let mut cancel = self.cancel.clone();
        let response = tokio::select! {
            response = llm.complete_with_retries(request, &mut on_delta, &mut on_retry) => response,
            _ = cancel.wait_for(|c| *c) => return Err(RunError::Cancelled),
        }
        .map_err(|error| RunError::Llm {
            agent: agent.name.clone(),
            error,
        })?;
        if let Some(usage) = response.usage {
            self.emit(Event::Usage {
                agent: agent.name.clone(),
                model: if response.model.is_empty() {
                    model
                } else {
                    response.model.clone()
                },
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            })
            .await?;
        }
        let mut response = response;
        // The hooks rewrite the message first; the triggers then read (and
        // may hide a token of) what would be stored and sent.
        let processed = self
            .process_before_send(agent, std::mem::take(&mut response.content))
            .await?;
        response.content = self.fire_text_triggers(agent, &processed).await?;
        if !response.tool_calls.is_empty() {
            self.tool_rounds += 1;
            let tool_calls = response
                .tool_calls
                .into_iter()
                .map(|c| ToolCallRecord {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect();
            return self
                .emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls,
                    structured: None,
                    model: None,
                })
                .await;
        }
        let Some(model) = agent
            .structured_output
            .as_deref()
            .and_then(|m| self.workflow.output_model(m))
            .cloned()
        else {
            return self
                .emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls: Vec::new(),
                    structured: None,
                    model: None,
                })
                .await;
        };
        match self.validators.check(&model, &response.content) {
            Ok(value) => {
                self.emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls: Vec::new(),
                    structured: Some(value.clone()),
                    model: Some(model.name.clone()),
                })
                .await?;
                // The `auto_execute` tools run next, in the `Replied` step
                // (`Run::auto_execute`), so that a resumed run runs them too.
                self.set_agent_derived(agent, &value).await
            }
            Err(errors) => {
                let retries = self.state.retries;
                self.emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls: Vec::new(),
                    structured: None,
                    model: Some(model.name.clone()),
                })
                .await?;
                if retries < STRUCTURED_OUTPUT_RETRIES {
                    self.emit(Event::StructuredOutputRetry {
                        agent: agent.name.clone(),
                        model: model.name.clone(),
                        errors,
                    })
                    .await
                } else {
                    self.fail(
                        ErrorCode::StructuredOutputInvalid,
                        format!(
                            "agent `{}` answered twice without matching the `{}` schema: {}",
                            agent.name,
                            model.name,
                            errors.join("; ")
                        ),
                    )
                    .await
                }
            }
        }
    }

    /// The request of `agent`'s next LLM call, with the chat's context as
    /// it is now (tools' changes included).
    pub(super) async fn request_for(&self, agent: &Agent) -> Result<ChatRequest, RunError> {
        let context = self.live.context().await?;
        let defaults = RequestDefaults {
            model: self.shared.llm.default_model(),
            timeout: self.shared.llm_timeout,
            cache_seed: self.chat.cache_seed,
        };
        Ok(chat_request_with(
            &self.workflow,
            agent,
            self.events.iter().map(|e| &**e),
            &context,
            &defaults,
        ))
    }

    pub(super) async fn run_tools(
        &mut self,
        agent: &Agent,
        calls: Vec<ToolCallRecord>,
    ) -> Result<(), RunError> {
        for call in calls {
            let arguments = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|_| Value::String(call.arguments.clone()));
            self.emit(Event::ToolCall {
                call_id: call.id.clone(),
                agent: agent.name.clone(),
                tool: call.name.clone(),
                arguments,
                origin: None,
            })
            .await?;
            let report = match handoff::transfer_target(&agent.handoffs, &call.name) {
                Some(target) => ToolReport {
                    ok: true,
                    content: format!("transferring to {}", handoff::target_name(&target)),
                    error: None,
                },
                None => {
                    self.execute(agent, &call.name, &call.id, &call.arguments)
                        .await?
                }
            };
            if report.ok {
                self.set_tool_derived(&call.name, &report.content).await?;
            }
            self.emit(Event::ToolResult {
                call_id: call.id,
                agent: agent.name.clone(),
                tool: call.name,
                ok: report.ok,
                content: report.content,
                error: report.error,
            })
            .await?;
        }
        Ok(())
    }

    pub(super) async fn execute(
        &mut self,
        agent: &Agent,
        tool_name: &str,
        call_id: &str,
        arguments: &str,
    ) -> Result<ToolReport, RunError> {
        if !agent.tools.iter().any(|t| t == tool_name) {
            return Ok(ToolReport::failed(
                ToolFailureKind::UnknownTool,
                format!(
                    "agent `{}` has no tool `{tool_name}`; its tools are: {}",
                    agent.name,
                    agent.tools.join(", ")
                ),
            ));
        }
        let Some(tool) = self.workflow.tool(tool_name).cloned() else {
            return Ok(ToolReport::failed(
                ToolFailureKind::UnknownTool,
                format!("no tool `{tool_name}` in this workflow"),
            ));
        };
        self.call_tool(&tool, arguments, &agent.name, call_id).await
    }

    /// Calls `tool`'s plugin function with `arguments` for `caller`, with
    /// the chat's context and UI; stops at the user's end of the chat and
    /// at a shutdown that finds the call waiting for the user.
    pub(super) async fn call_tool(
        &self,
        tool: &Tool,
        arguments: &str,
        caller: &str,
        call_id: &str,
    ) -> Result<ToolReport, RunError> {
        let plugin = match self.shared.plugin(&tool.plugin) {
            Ok(plugin) => plugin,
            Err(unavailable) => {
                return Ok(ToolReport::failed(
                    ToolFailureKind::PluginUnavailable,
                    unavailable.to_string(),
                ));
            }
        };
        // The call's `tool_call` (and everything before it) is durable
        // before the plugin can act on the world.
        let barrier = tools::before_plugin_call(&plugin, &self.live, self.writes_seen).await?;
        let attempt = history::CallAttempt::of(&self.events, call_id);
        let info = mozaiks_plugin_host::CallInfo {
            chat_id: self.chat.chat_id.clone(),
            workflow: self.workflow.name().to_owned(),
            agent: caller.to_owned(),
            tool_call_id: call_id.to_owned(),
            idempotency_key: attempt.key(&self.chat.chat_id, call_id),
            attempt: attempt.number,
        };
        let call = tools::execute(
            &plugin,
            &tool.function,
            arguments,
            info,
            &self.live,
            tool,
            &self.workflow,
            crate::orchestrator::tools::ChatPorts {
                writes_seen: Some(self.writes_seen),
                ..crate::orchestrator::Orchestrator::chat_ports(&self.shared, &self.chat, barrier)
            },
        );
        self.until_interrupted(crate::orchestrator::instrument::tool_call(
            &tool.plugin,
            &tool.function,
            call,
        ))
        .await
    }

    /// Runs `work`, plugin calls (a tool's or hooks'), until it finishes,
    /// or until the user ends the chat, a shutdown finds it waiting for the
    /// user, or the chat moves to another server.
    async fn until_interrupted<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, RunError> {
        let live = Arc::clone(&self.live);
        let mut cancel = self.cancel.clone();
        tokio::select! {
            done = work => Ok(done),
            _ = cancel.wait_for(|c| *c) => Err(RunError::Cancelled),
            _ = crate::orchestrator::drain::parked_in_ui(&live, self.lifecycle.clone()) => Err(RunError::ShuttingDown),
            owner = live.moved() => Err(RunError::Moved { owner }),
        }
    }

    pub(super) async fn after_tools(&mut self, agent: &Agent) -> Result<(), RunError> {
        let transfer = self.last_transfer(agent);
        if let Some(target) = transfer {
            self.run_lifecycle(LifecycleTrigger::AfterAgent, Some(&agent.name))
                .await?;
            let tool = handoff::transfer_tool_name(&target);
            return self
                .handoff(
                    &agent.name,
                    Decision {
                        target,
                        reason: HandoffReason::Llm { tool },
                    },
                )
                .await;
        }
        // Control comes back to the agent as in AG2: its `pre` conditions
        // are checked before it is asked again, so a tool that changes the
        // context hands off without another LLM call.
        let context = self.live.context().await?;
        if let Some(decision) = handoff::by_context(&agent.handoffs, Scope::Pre, &context) {
            self.run_lifecycle(LifecycleTrigger::AfterAgent, Some(&agent.name))
                .await?;
            return self.handoff(&agent.name, decision).await;
        }
        if self.tool_rounds >= MAX_TOOL_ROUNDS_PER_TURN {
            self.emit(Event::Error {
                code: ErrorCode::ToolRoundLimit,
                message: format!(
                    "agent `{}` called tools {MAX_TOOL_ROUNDS_PER_TURN} times in one turn without answering; its turn ends",
                    agent.name
                ),
            })
            .await?;
            return self.after_reply(agent).await;
        }
        let Position::InTurn { .. } = self.state.position else {
            return Ok(());
        };
        self.state.position = Position::InTurn {
            agent: agent.name.clone(),
            step: TurnStep::CallLlm,
        };
        Ok(())
    }

    pub(super) fn last_transfer(&self, agent: &Agent) -> Option<Target> {
        self.events.iter().rev().find_map(|e| match &e.event {
            Event::AgentMessage { tool_calls, .. } => Some(
                tool_calls
                    .iter()
                    .find_map(|c| handoff::transfer_target(&agent.handoffs, &c.name)),
            ),
            _ => None,
        })?
    }

    /// Context variables derived from this agent's structured output: the
    /// value at their `field`, else the field of the same name, else the
    /// whole output (`orchestrator/triggers.rs`).
    pub(super) async fn set_agent_derived(
        &mut self,
        agent: &Agent,
        structured: &Value,
    ) -> Result<(), RunError> {
        for (key, value) in triggers::agent_output_fields(
            self.workflow.context_variables(),
            &agent.name,
            structured,
        ) {
            self.emit(Event::ContextChanged {
                key,
                value: Some(value),
                by: format!("agent:{}", agent.name),
            })
            .await?;
        }
        Ok(())
    }

    /// Context variables derived from a field of `tool`'s result, set
    /// before the result is stored (a crash in between calls the tool
    /// again, which sets them again). A value of the wrong type is not
    /// written.
    async fn set_tool_derived(&mut self, tool: &str, content: &str) -> Result<(), RunError> {
        let Ok(result) = serde_json::from_str::<Value>(content) else {
            return Ok(());
        };
        let rules = crate::orchestrator::context_writes::WriteRules::of(&self.workflow);
        for (key, value) in
            triggers::tool_result_fields(self.workflow.context_variables(), tool, &result)
        {
            if let Err(refused) = rules.check(&key, &value) {
                tracing::warn!(tool, %refused, "derived variable not set from the tool's result");
                continue;
            }
            self.emit(Event::ContextChanged {
                key,
                value: Some(value),
                by: format!("tool:{tool}"),
            })
            .await?;
        }
        Ok(())
    }

    /// Fires `agent`'s `agent_text` triggers on its reply `text`, before
    /// the reply is stored, and returns the text to store (without what
    /// `ui_hidden` triggers matched). A trigger already recorded for this
    /// LLM step (the run crashed after it, before the reply was stored, and
    /// asked again) is not fired twice.
    async fn fire_text_triggers(&mut self, agent: &Agent, text: &str) -> Result<String, RunError> {
        let firings = triggers::agent_text(self.workflow.context_variables(), &agent.name, text);
        let by = format!("trigger:{}", agent.name);
        let already = triggers::already_fired(self.events.iter().map(|e| &**e), &by);
        for (key, value) in firings.set {
            if already.contains(&key) {
                continue;
            }
            self.emit(Event::ContextChanged {
                key,
                value: Some(value),
                by: by.clone(),
            })
            .await?;
        }
        Ok(firings.shown)
    }

    /// Sends the structured output of this turn's reply to the tools its
    /// model's `auto_execute` names (UI or agent tools), in order, as part
    /// of the turn (not in the background, unlike MozaiksAI): the output
    /// object is the arguments object. Each call's id is made of the
    /// reply's `seq` and the tool, so a resumed run runs only the calls
    /// that have no result. Their results are in the transcript the next
    /// LLM call sees (`history::transcript`).
    pub(super) async fn auto_execute(&mut self, agent: &Agent) -> Result<(), RunError> {
        let Some((seq, model, value)) = self.structured_reply_of_this_turn(agent) else {
            return Ok(());
        };
        let tools = self
            .workflow
            .output_model(&model)
            .map(|m| m.auto_execute.clone())
            .unwrap_or_default();
        for tool_name in tools {
            let Some(tool) = self.workflow.tool(&tool_name).cloned() else {
                continue;
            };
            let call_id = format!("auto-{seq}-{}", tool.name);
            if self.has_result(&call_id) {
                continue;
            }
            self.emit(Event::ToolCall {
                call_id: call_id.clone(),
                agent: agent.name.clone(),
                tool: tool.name.clone(),
                arguments: value.clone(),
                origin: Some(CallOrigin::AutoExecute),
            })
            .await?;
            let report = self
                .call_tool(&tool, &value.to_string(), &agent.name, &call_id)
                .await?;
            if report.ok {
                self.set_tool_derived(&tool.name, &report.content).await?;
            }
            self.emit(Event::ToolResult {
                call_id,
                agent: agent.name.clone(),
                tool: tool.name.clone(),
                ok: report.ok,
                content: report.content,
                error: report.error,
            })
            .await?;
        }
        Ok(())
    }

    /// The `seq`, model and value of `agent`'s valid structured output in
    /// the current turn (the events since its `speaker`), if it has one.
    fn structured_reply_of_this_turn(&self, agent: &Agent) -> Option<(u64, String, Value)> {
        for envelope in self.events.iter().rev() {
            match &envelope.event {
                Event::AgentMessage {
                    agent: speaker,
                    structured: Some(value),
                    model: Some(model),
                    ..
                } if *speaker == agent.name => {
                    return Some((envelope.seq.unwrap_or(0), model.clone(), value.clone()));
                }
                Event::Speaker { .. } => return None,
                _ => {}
            }
        }
        None
    }

    /// The seam where hooks meet the system message: the text of `agent`'s
    /// `update_agent_state` hooks is appended, after a blank line, to the
    /// system message of this one request (it is not stored).
    async fn add_agent_state(
        &mut self,
        agent: &Agent,
        request: &mut ChatRequest,
    ) -> Result<(), RunError> {
        let Some(ChatMessage::System { content }) = request.messages.first_mut() else {
            return Ok(());
        };
        let site = self.hook_site();
        let (added, failures) = self
            .until_interrupted(hooks::agent_state(site, &agent.name, content))
            .await?;
        if let Some(added) = added {
            content.push_str("\n\n");
            content.push_str(&added);
        }
        self.warn_hook_failures(failures).await
    }

    /// `agent`'s reply after its `process_message_before_send` hooks.
    async fn process_before_send(
        &mut self,
        agent: &Agent,
        text: String,
    ) -> Result<String, RunError> {
        if text.is_empty() {
            return Ok(text);
        }
        let site = self.hook_site();
        let (text, failures) = self
            .until_interrupted(hooks::process_message(site, &agent.name, text))
            .await?;
        self.warn_hook_failures(failures).await?;
        Ok(text)
    }

    fn hook_site(&self) -> hooks::HookSite<'_> {
        hooks::HookSite {
            shared: &self.shared,
            live: &self.live,
            workflow: &self.workflow,
            chat: &self.chat,
            writes_seen: self.writes_seen,
        }
    }

    /// One `warning` event per hook that left its text unchanged.
    async fn warn_hook_failures(
        &mut self,
        failures: Vec<hooks::HookFailure>,
    ) -> Result<(), RunError> {
        for hooks::HookFailure(message) in failures {
            self.emit(Event::Warning {
                code: ErrorCode::HookFailed,
                message,
            })
            .await?;
        }
        Ok(())
    }
}
