//! One agent's turn: the LLM call (streamed, with a structured-output
//! retry), the tool rounds it asks for, and what its output sets or shows.

use std::sync::Arc;

use serde_json::Value;

use super::{MAX_TOOL_ROUNDS_PER_TURN, Run, RunError, chat_request};
use crate::event::{ErrorCode, Event, HandoffReason, ToolCallRecord, ToolFailureKind};
use crate::llm::ChatRequest;
use crate::orchestrator::handoff::{self, Decision, Scope};
use crate::orchestrator::history::{Position, TurnStep};
use crate::orchestrator::structured::STRUCTURED_OUTPUT_RETRIES;
use crate::orchestrator::tools::{self, ToolReport};
use crate::workflow::model::{Agent, Producer, Target, VariableSource};

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
        let request = self.request_for(agent);
        let model = request.model.clone();
        let live = Arc::clone(&self.live);
        let name = agent.name.clone();
        let mut on_delta = |delta: &str| {
            live.send_ephemeral(Event::TextDelta {
                agent: name.clone(),
                delta: delta.to_owned(),
            });
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
                self.set_agent_derived(agent, &value).await?;
                self.auto_execute(agent, &model.auto_execute, &value).await
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

    pub(super) fn request_for(&self, agent: &Agent) -> ChatRequest {
        chat_request(
            &self.workflow,
            agent,
            self.events.iter().map(|e| &**e),
            self.shared.llm.default_model(),
            self.shared.llm_timeout,
            self.chat.cache_seed,
        )
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
        let plugin = match self.shared.plugin(&tool.plugin) {
            Ok(plugin) => plugin,
            Err(unavailable) => {
                return Ok(ToolReport::failed(
                    ToolFailureKind::PluginUnavailable,
                    unavailable.to_string(),
                ));
            }
        };
        let info = mozaiks_plugin_host::CallInfo {
            chat_id: self.chat.chat_id.clone(),
            workflow: self.workflow.name().to_owned(),
            agent: agent.name.clone(),
            tool_call_id: call_id.to_owned(),
        };
        let live = Arc::clone(&self.live);
        let mut cancel = self.cancel.clone();
        let call = tools::execute(
            &plugin,
            &tool.function,
            arguments,
            info,
            &live,
            &tool,
            crate::orchestrator::Orchestrator::chat_ports(&self.shared, &self.chat),
        );
        tokio::select! {
            report = crate::orchestrator::instrument::tool_call(&tool.plugin, &tool.function, call) => Ok(report),
            _ = cancel.wait_for(|c| *c) => Err(RunError::Cancelled),
            _ = crate::orchestrator::drain::parked_in_ui(&live, self.lifecycle.clone()) => Err(RunError::ShuttingDown),
        }
    }

    pub(super) async fn after_tools(&mut self, agent: &Agent) -> Result<(), RunError> {
        let transfer = self.last_transfer(agent);
        if let Some(target) = transfer {
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
    /// field of the same name, else the whole output.
    pub(super) async fn set_agent_derived(
        &mut self,
        agent: &Agent,
        structured: &Value,
    ) -> Result<(), RunError> {
        let derived: Vec<String> = self
            .workflow
            .context_variables()
            .iter()
            .filter(|v| {
                matches!(&v.source, VariableSource::Derived { by: Producer::Agent(a), .. } if *a == agent.name)
            })
            .map(|v| v.name.clone())
            .collect();
        for name in derived {
            let value = match structured {
                Value::Object(fields) if fields.contains_key(&name) => fields[&name].clone(),
                whole => whole.clone(),
            };
            self.emit(Event::ContextChanged {
                key: name,
                value: Some(value),
                by: format!("agent:{}", agent.name),
            })
            .await?;
        }
        Ok(())
    }

    /// Sends a structured output to the UI tools bound to its model, as part
    /// of the agent's turn (not in the background, unlike MozaiksAI).
    pub(super) async fn auto_execute(
        &mut self,
        agent: &Agent,
        tools: &[String],
        value: &Value,
    ) -> Result<(), RunError> {
        for tool_name in tools {
            let Some(tool) = self.workflow.tool(tool_name).cloned() else {
                continue;
            };
            let call_id = format!("auto-{}", uuid::Uuid::new_v4());
            self.emit(Event::ToolCall {
                call_id: call_id.clone(),
                agent: agent.name.clone(),
                tool: tool.name.clone(),
                arguments: value.clone(),
            })
            .await?;
            let report = match self.shared.plugin(&tool.plugin) {
                Ok(plugin) => {
                    let info = mozaiks_plugin_host::CallInfo {
                        chat_id: self.chat.chat_id.clone(),
                        workflow: self.workflow.name().to_owned(),
                        agent: agent.name.clone(),
                        tool_call_id: call_id.clone(),
                    };
                    let live = Arc::clone(&self.live);
                    let arguments = value.to_string();
                    let call = tools::execute(
                        &plugin,
                        &tool.function,
                        &arguments,
                        info,
                        &live,
                        &tool,
                        crate::orchestrator::Orchestrator::chat_ports(&self.shared, &self.chat),
                    );
                    tokio::select! {
                        report = crate::orchestrator::instrument::tool_call(&tool.plugin, &tool.function, call) => report,
                        _ = crate::orchestrator::drain::parked_in_ui(&live, self.lifecycle.clone()) => {
                            return Err(RunError::ShuttingDown);
                        }
                    }
                }
                Err(unavailable) => {
                    ToolReport::failed(ToolFailureKind::PluginUnavailable, unavailable.to_string())
                }
            };
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
}
