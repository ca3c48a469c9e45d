//! Checks of `tools.json`: each tool resolves to a plugin function, and
//! UI tools name their component.

use std::collections::BTreeSet;

use super::{TOOLS_FILE, Validator, tool_name};
use crate::workflow::catalog::{LookupError, ToolCatalog};
use crate::workflow::diagnostic::JsonPath;
use crate::workflow::model::{Tool, ToolKind};
use crate::workflow::spec::{AgentList, ToolSpec, ToolType};

impl Validator<'_> {
    pub(super) fn tool(
        &mut self,
        spec: &ToolSpec,
        path: &JsonPath,
        seen: &mut BTreeSet<String>,
        agents: &[&str],
        catalog: &dyn ToolCatalog,
    ) -> Option<Tool> {
        let before = self.diagnostics.len();
        let name = tool_name(spec);
        let name_path = if spec.name.is_some() {
            path.key("name")
        } else {
            path.key("function")
        };
        if !seen.insert(name.clone()) {
            self.error(
                TOOLS_FILE,
                name_path,
                format!("duplicate tool \"{name}\""),
                Some("give one of them a different `name`".to_owned()),
            );
        }
        let function = match catalog.function(&spec.plugin, &spec.function) {
            Ok(f) => Some(f),
            Err(err) => {
                let field = if matches!(err, LookupError::UnknownPlugin { .. }) {
                    "plugin"
                } else {
                    "function"
                };
                self.error(
                    TOOLS_FILE,
                    path.key(field),
                    err.to_string(),
                    Some(err.help()),
                );
                None
            }
        };
        if let Some(list) = &spec.agent {
            for (i, agent) in list.names().iter().enumerate() {
                let p = if matches!(list, AgentList::One(_)) {
                    path.key("agent")
                } else {
                    path.key("agent").index(i)
                };
                self.agent_exists(TOOLS_FILE, p, agent, agents, false);
            }
        }
        let kind = match (spec.tool_type, &spec.ui) {
            (ToolType::AgentTool, None) => ToolKind::Agent,
            (ToolType::UiTool, Some(ui)) if !ui.component.trim().is_empty() => ToolKind::Ui {
                component: ui.component.clone(),
                mode: ui.mode,
            },
            (ToolType::UiTool, Some(_)) => {
                self.error(
                    TOOLS_FILE,
                    path.key("ui").key("component"),
                    "component is empty",
                    None,
                );
                ToolKind::Agent
            }
            (ToolType::UiTool, None) => {
                let help = "add \"ui\": {\"component\": \"<ComponentName>\", \"mode\": \"inline\"}";
                self.error(
                    TOOLS_FILE,
                    path.clone(),
                    "a UI_Tool needs a `ui` with the component it shows",
                    Some(help.to_owned()),
                );
                ToolKind::Agent
            }
            (ToolType::AgentTool, Some(_)) => {
                self.error(
                    TOOLS_FILE,
                    path.key("ui"),
                    "only a UI_Tool has a `ui`",
                    Some("set \"tool_type\": \"UI_Tool\" or remove `ui`".to_owned()),
                );
                ToolKind::Agent
            }
        };
        let function = function.filter(|_| self.diagnostics.len() == before)?;
        Some(Tool {
            name,
            plugin: spec.plugin.clone(),
            function: spec.function.clone(),
            description: spec
                .description
                .clone()
                .unwrap_or_else(|| function.description.clone()),
            parameters: function.parameters.clone(),
            kind,
        })
    }
}
