//! `ui_config.json` `visual_agents`: each name is an agent of the workflow
//! or `user`, and appears once.

use super::Validator;
use crate::workflow::diagnostic::JsonPath;
use crate::workflow::load::UI_CONFIG_FILE;
use crate::workflow::spec::UiConfigFile;

/// The checked `visual_agents` (empty when the file is absent).
pub(super) fn check(v: &mut Validator<'_>, file: &UiConfigFile, agents: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for (index, name) in file.visual_agents.iter().enumerate() {
        let path = JsonPath::root().key("visual_agents").index(index);
        if names.contains(name) {
            v.error(
                UI_CONFIG_FILE,
                path,
                format!("agent {name:?} is listed twice"),
                None,
            );
            continue;
        }
        if v.agent_exists(UI_CONFIG_FILE, path, name, agents, true) {
            names.push(name.clone());
        }
    }
    names
}
