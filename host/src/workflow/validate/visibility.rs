//! Checks of what agents see of the context: agents.json
//! `context_variables` and the `{{context.name}}` references in
//! `system_message` and `prompt_sections[].content`.

use super::{AGENTS_FILE, Validator};
use crate::workflow::diagnostic::{JsonPath, list};
use crate::workflow::spec::AgentSpec;
use crate::workflow::template::references;

/// Context variables every chat has without declaring them (set when the
/// chat is created), which prompts may show too.
pub(crate) const BUILT_IN_VARIABLES: [&str; 4] = ["workflow_name", "app_id", "chat_id", "user_id"];

impl Validator<'_> {
    /// Checks the variables agent `spec` (at `path`) sees; returns its
    /// `context_variables`.
    pub(super) fn visibility(
        &mut self,
        spec: &AgentSpec,
        path: &JsonPath,
        declared: &[&str],
    ) -> Vec<String> {
        let known = |name: &str| declared.contains(&name) || BUILT_IN_VARIABLES.contains(&name);
        let help = || {
            let mut names: Vec<&str> = declared.to_vec();
            names.extend(BUILT_IN_VARIABLES);
            format!("context variables are {}", list(&names))
        };
        let mut seen = Vec::new();
        for (i, name) in spec.context_variables.iter().enumerate() {
            if !known(name) {
                self.error(
                    AGENTS_FILE,
                    path.key("context_variables").index(i),
                    format!("unknown context variable \"{name}\""),
                    Some(help()),
                );
            } else if seen.contains(name) {
                self.error(
                    AGENTS_FILE,
                    path.key("context_variables").index(i),
                    format!("\"{name}\" is listed twice"),
                    None,
                );
            } else {
                seen.push(name.clone());
            }
        }
        let mut texts = Vec::new();
        if let Some(text) = &spec.system_message {
            texts.push((path.key("system_message"), text));
        }
        for (i, section) in spec.prompt_sections.iter().flatten().enumerate() {
            texts.push((
                path.key("prompt_sections").index(i).key("content"),
                &section.content,
            ));
        }
        for (at, text) in texts {
            match references(text) {
                Err(err) => self.error(AGENTS_FILE, at, err.to_string(), None),
                Ok(refs) => {
                    for reference in refs.iter().filter(|r| !known(&r.name)) {
                        self.error(
                            AGENTS_FILE,
                            at.clone(),
                            format!(
                                "unknown context variable \"{}\" in {{{{context.{}}}}}",
                                reference.name, reference.name
                            ),
                            Some(help()),
                        );
                    }
                }
            }
        }
        seen
    }
}
