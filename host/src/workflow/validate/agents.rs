//! Checks of `agents.json`.

use std::collections::{BTreeMap, BTreeSet};

use super::{AGENTS_FILE, STRUCTURED_OUTPUTS_FILE, TERMINATE, USER, Validator};
use crate::workflow::diagnostic::{JsonPath, list};
use crate::workflow::model::{Agent, Handoffs, LlmSettings};
use crate::workflow::spec::AgentSpec;

impl Validator<'_> {
    pub(super) fn agent(
        &mut self,
        spec: &AgentSpec,
        path: &JsonPath,
        seen: &mut BTreeSet<String>,
        tool_names: &[String],
        models: &[&str],
        registry: &BTreeMap<String, String>,
    ) -> Option<Agent> {
        let before = self.diagnostics.len();
        if spec.name.trim().is_empty() {
            self.error(AGENTS_FILE, path.key("name"), "agent name is empty", None);
        } else if spec.name == USER || spec.name == TERMINATE {
            self.error(
                AGENTS_FILE,
                path.key("name"),
                format!("\"{}\" is reserved for handoff targets", spec.name),
                Some("rename the agent".to_owned()),
            );
        } else if !seen.insert(spec.name.clone()) {
            self.error(
                AGENTS_FILE,
                path.key("name"),
                format!("duplicate agent \"{}\"", spec.name),
                None,
            );
        }
        let system_message = match (&spec.system_message, &spec.prompt_sections) {
            (Some(text), None) => text.clone(),
            (None, Some(sections)) => sections
                .iter()
                .map(|s| match &s.heading {
                    Some(h) => format!("{h}\n{}", s.content.trim()),
                    None => s.content.trim().to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
            _ => {
                self.error(
                    AGENTS_FILE,
                    path.clone(),
                    "give exactly one of system_message and prompt_sections",
                    None,
                );
                String::new()
            }
        };
        let llm = self.llm(spec, path);
        self.ag2_knobs(spec, path);
        for (i, tool) in spec.tools.iter().enumerate() {
            if !tool_names.contains(tool) {
                let help = format!("tools.json declares {}", list(tool_names));
                self.error(
                    AGENTS_FILE,
                    path.key("tools").index(i),
                    format!("unknown tool \"{tool}\""),
                    Some(help),
                );
            }
        }
        let mut structured_output = spec.structured_output.clone();
        if let Some(model) = &spec.structured_output
            && !models.contains(&model.as_str())
        {
            let help = format!("{STRUCTURED_OUTPUTS_FILE} defines {}", list(models));
            self.error(
                AGENTS_FILE,
                path.key("structured_output"),
                format!("unknown structured output model \"{model}\""),
                Some(help),
            );
        }
        if let Some(registered) = registry.get(&spec.name) {
            match &structured_output {
                Some(own) if own != registered => self.error(
                    AGENTS_FILE,
                    path.key("structured_output"),
                    format!("\"{own}\" conflicts with \"{registered}\" in the registry of {STRUCTURED_OUTPUTS_FILE}"),
                    Some("name the model in one place".to_owned()),
                ),
                _ => structured_output = Some(registered.clone()),
            }
        }
        (self.diagnostics.len() == before).then(|| Agent {
            name: spec.name.clone(),
            system_message,
            context_variables: Vec::new(),
            llm,
            tools: spec.tools.clone(),
            structured_output,
            max_consecutive_auto_reply: spec.max_consecutive_auto_reply,
            human_input_mode: spec.human_input_mode,
            handoffs: Handoffs::default(),
        })
    }

    fn llm(&mut self, spec: &AgentSpec, path: &JsonPath) -> LlmSettings {
        let Some(config) = &spec.llm_config else {
            return LlmSettings::default();
        };
        let path = path.key("llm_config");
        if let Some(t) = config.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            self.error(
                AGENTS_FILE,
                path.key("temperature"),
                format!("temperature must be between 0 and 2, not {t}"),
                None,
            );
        }
        let timeout = config.timeout.and_then(|t| {
            std::time::Duration::try_from_secs_f64(t)
                .ok()
                .filter(|d| !d.is_zero())
        });
        if config.timeout.is_some() && timeout.is_none() {
            self.error(
                AGENTS_FILE,
                path.key("timeout"),
                "timeout must be a positive number of seconds",
                None,
            );
        }
        if config.max_tokens == Some(0) {
            self.error(
                AGENTS_FILE,
                path.key("max_tokens"),
                "max_tokens must be at least 1",
                None,
            );
        }
        LlmSettings {
            model: config.model.clone(),
            temperature: config.temperature,
            timeout,
            max_tokens: config.max_tokens,
        }
    }
}
