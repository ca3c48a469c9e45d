//! `mozaiks import mozaiksai <folder>`: converts a MozaiksAI workflow
//! folder (YAML, or the JSON of before December 2025) into a mozaiks
//! workflow folder, and reports everything it could not carry over.
//!
//! The stages, one module each: [`read`] parses every section file;
//! [`normalise`] reduces MozaiksAI's aliases and alternative shapes to one
//! spelling; [`fields`] turns the structured-output field grammar into
//! strict JSON Schema; [`orchestrator`], [`agents`], [`handoffs`],
//! [`context`], [`outputs`] and [`tools`] map one file each; [`report`]
//! collects what was not mapped and the Python functions still to port;
//! [`verify`] loads the written folder with the real workflow loader.
//! docs/workflows.md ("Migrating from MozaiksAI") describes the use.

mod agents;
mod context;
mod fields;
mod handoffs;
mod normalise;
mod orchestrator;
mod outputs;
mod read;
mod report;
mod tools;
mod verify;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod mutations;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

pub use read::ReadError;
pub use report::{ImportReport, Note, PortTool};
pub use verify::Verdict;

use crate::workflow::diagnostic::JsonPath;

/// Why an import did not write its folder.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Section files that could not be read or parsed (all of them).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Read(Vec<ReadError>),
    /// The output folder exists and is not empty.
    #[error("{} already exists and is not empty: give another --out, or remove it", .0.display())]
    OutputExists(PathBuf),
    /// Writing the output failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A converted workflow, not yet written.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The workflow's name (its folder's).
    pub name: String,
    /// Relative path → content, for every file of the new folder.
    pub files: BTreeMap<String, Vec<u8>>,
    /// What was not mapped, and the tools to port.
    pub report: ImportReport,
}

/// A written import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The conversion.
    pub converted: Converted,
    /// The folder written.
    pub out: PathBuf,
    /// The report file written beside it.
    pub report_file: PathBuf,
    /// What the real workflow loader says of the folder.
    pub verdict: Verdict,
}

/// Converts the MozaiksAI workflow folder `src` without writing anything.
/// The workflow takes the name `name` (a mozaiks workflow is named after
/// its folder).
pub fn convert(src: &Path, name: &str) -> Result<Converted, ImportError> {
    let source = read::read_source(src).map_err(ImportError::Read)?;
    convert_source(&source, name)
}

/// Converts a folder already read.
fn convert_source(source: &read::Source, name: &str) -> Result<Converted, ImportError> {
    let mut report = ImportReport::default();
    let mut files = BTreeMap::new();
    let (Some(agents_file), Some(orchestrator_file)) =
        (source.file("agents"), source.file("orchestrator"))
    else {
        // read_source fails without either; kept total all the same.
        return Err(ImportError::Read(Vec::new()));
    };
    let agents_in = agents::read(agents_file, &mut report);
    let names: Vec<String> = agents_in.iter().map(|a| a.name.clone()).collect();
    let orch = orchestrator::convert(orchestrator_file, name, &names, &mut report);

    let outputs = source
        .file("structured_outputs")
        .map(|f| outputs::read(f, &names, &mut report))
        .unwrap_or_default();
    let tools_file = source.file("tools");
    let tools = tools_file
        .map(|f| tools::convert_tools(f, name, &agents_in, &mut report))
        .unwrap_or_default();
    let lifecycle = tools_file
        .map(|f| tools::convert_lifecycle(f, name, &agents_in, &mut report))
        .unwrap_or_default();
    for (stem, known) in TOP_LEVEL_KEYS {
        if let Some(f) = source.file(stem) {
            unknown_top_level_keys(f, known, &mut report);
        }
    }
    let auto = outputs::auto_execute(
        &agents_file.name,
        tools_file.map(|f| f.name.as_str()),
        &agents_in,
        &outputs,
        &tools,
        &mut report,
    );

    let producers = context::Producers {
        tools: &tools,
        outputs: &outputs,
        agents: &names,
    };
    let mut ctx = source
        .file("context_variables")
        .map(|f| context::convert(f, &source.dir, &producers, &mut report))
        .unwrap_or_default();
    let handoffs = source
        .file("handoffs")
        .map(|f| handoffs::convert(f, &names, &orch.pattern, &ctx.declared, &mut report))
        .unwrap_or_default();
    for (var, (var_type, used_at)) in &handoffs.undeclared {
        report.note(
            source.file("handoffs").map_or("handoffs", |f| f.name.as_str()),
            used_at,
            format!("${{{var}}} is used but not declared: declared as static {var_type} (null until a tool sets it; MozaiksAI read it as None)"),
        );
        let mut source_map = Mapping::new();
        source_map.insert("type".into(), "static".into());
        let mut def = Mapping::new();
        def.insert("name".into(), var.clone().into());
        def.insert("type".into(), var_type.clone().into());
        def.insert("source".into(), Value::Mapping(source_map));
        ctx.definitions.push(Value::Mapping(def));
    }

    let hooks = source
        .file("hooks")
        .map(|f| tools::convert_hooks(f, name, &agents_in, &mut report))
        .unwrap_or_default();
    let visual_agents = source
        .file("ui_config")
        .map(|ui| ui_config(ui, &names, &mut report))
        .unwrap_or_default();
    extras(source, &tools_file_names(source), &mut report);

    files.insert(
        "orchestrator.json".to_owned(),
        json(&Value::Mapping(orch.file)),
    );
    files.insert(
        "agents.json".to_owned(),
        json(&agents::write(
            agents_file,
            &agents_in,
            &ctx.visible,
            &mut report,
        )),
    );
    if !handoffs.rules.is_empty() {
        files.insert(
            "handoffs.json".to_owned(),
            json(&object("handoff_rules", Value::Sequence(handoffs.rules))),
        );
    }
    if !ctx.definitions.is_empty() {
        files.insert(
            "context_variables.json".to_owned(),
            json(&object("definitions", Value::Sequence(ctx.definitions))),
        );
    }
    if !visual_agents.is_empty() {
        let names = visual_agents.into_iter().map(Value::from).collect();
        files.insert(
            "ui_config.json".to_owned(),
            json(&object("visual_agents", Value::Sequence(names))),
        );
    }
    if let Some(so) = outputs::write(&outputs, &auto) {
        files.insert("structured_outputs.json".to_owned(), json(&so));
    }
    if !tools.is_empty() || !lifecycle.is_empty() {
        let mut t = Mapping::new();
        t.insert(
            "tools".into(),
            Value::Sequence(
                tools
                    .iter()
                    .map(|t| Value::Mapping(t.entry.clone()))
                    .collect(),
            ),
        );
        if !lifecycle.is_empty() {
            t.insert("lifecycle_tools".into(), Value::Sequence(lifecycle));
        }
        files.insert("tools.json".to_owned(), json(&Value::Mapping(t)));
    }
    if !hooks.is_empty() {
        files.insert(
            "hooks.json".to_owned(),
            json(&object("hooks", Value::Sequence(hooks))),
        );
    }
    files.extend(ctx.files);
    sort_by_file(&mut report, source);
    Ok(Converted {
        name: name.to_owned(),
        files,
        report,
    })
}

/// Converts `src` into the new folder `out` (which must not exist or be
/// empty), writes the report beside it as `<out>.import-report.txt`, and
/// loads the result with the real workflow loader.
pub fn import_mozaiksai(src: &Path, out: &Path) -> Result<Imported, ImportError> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Imported".to_owned());
    let converted = convert(src, &name)?;
    let empty_dir = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none());
    if out.exists() && !empty_dir {
        return Err(ImportError::OutputExists(out.to_owned()));
    }
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ImportError::Write { path, source }
    };
    for (rel, bytes) in &converted.files {
        let path = out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        std::fs::write(&path, bytes).map_err(write_err(&path))?;
    }
    let report_file = report_path(out);
    std::fs::write(
        &report_file,
        converted.report.render(&src.display().to_string()),
    )
    .map_err(write_err(&report_file))?;
    let verdict = verify::verify(out, &converted.report);
    Ok(Imported {
        converted,
        out: out.to_owned(),
        report_file,
        verdict,
    })
}

/// `<out>.import-report.txt`, beside the folder (a workflow folder holds
/// only what the loader reads).
pub fn report_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".import-report.txt");
    out.with_file_name(name)
}

/// The top-level keys of the section files whose content is a few known
/// keys (orchestrator.yaml and ui_config.yaml are checked key by key).
const TOP_LEVEL_KEYS: [(&str, &[&str]); 6] = [
    ("agents", &["agents"]),
    ("handoffs", &["handoff_rules"]),
    ("context_variables", &["definitions", "agents"]),
    (
        "structured_outputs",
        &["structured_outputs", "models", "registry"],
    ),
    ("tools", &["tools", "lifecycle_tools"]),
    ("hooks", &["hooks"]),
];

/// Reports the top-level keys of `file` not in `known`.
fn unknown_top_level_keys(file: &read::SourceFile, known: &[&str], report: &mut ImportReport) {
    let Some(map) = file.value.as_mapping() else {
        if !file.value.is_null() {
            report.note(
                &file.name,
                "$",
                "not a map of keys: nothing imported from it",
            );
        }
        return;
    };
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        if !known.contains(&key) && !orchestrator::is_empty(value) {
            report.note(
                &file.name,
                JsonPath::root().key(key),
                "not a key MozaiksAI reads in this file: not imported",
            );
        }
    }
}

/// Orders the notes by file (the sections in MozaiksAI's order, then
/// everything else), keeping the order within each file.
fn sort_by_file(report: &mut ImportReport, source: &read::Source) {
    let rank = |file: &str| {
        read::SECTIONS
            .iter()
            .position(|stem| source.file(stem).is_some_and(|f| f.name == file))
            .unwrap_or(read::SECTIONS.len())
    };
    report.notes.sort_by_key(|n| rank(&n.file));
}

fn object(key: &str, value: Value) -> Value {
    let mut m = Mapping::new();
    m.insert(key.into(), value);
    Value::Mapping(m)
}

/// Pretty JSON, two-space indented, keys in the order written, with a
/// final newline.
fn json(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// `ui_config.yaml`: `visual_agents` becomes `ui_config.json`'s, each name
/// matched to an agent as MozaiksAI matched it (lower case, without spaces
/// and "agent"), or `user`; a name that matches none is left out. Other
/// keys are front-end settings mozaiks does not have.
fn ui_config(file: &read::SourceFile, agents: &[String], report: &mut ImportReport) -> Vec<String> {
    let normalise = |name: &str| name.to_lowercase().replace("agent", "").replace(' ', "");
    let mut visual = Vec::new();
    for (key, value) in file.value.as_mapping().into_iter().flatten() {
        let key = key.as_str().unwrap_or_default();
        if orchestrator::is_empty(value) {
            continue;
        }
        if key != "visual_agents" {
            report.note(
                &file.name,
                JsonPath::root().key(key),
                "not supported: a front-end setting mozaiks does not have",
            );
            continue;
        }
        let Some(names) = value.as_sequence() else {
            report.note(
                &file.name,
                JsonPath::root().key(key),
                "not a list of agent names: left out (every agent's messages are shown)",
            );
            continue;
        };
        for (index, name) in names.iter().enumerate() {
            let name = name.as_str().unwrap_or_default();
            let found = if normalise(name) == "user" {
                Some("user".to_owned())
            } else {
                agents
                    .iter()
                    .find(|a| normalise(a) == normalise(name))
                    .cloned()
            };
            match found {
                Some(agent) if !visual.contains(&agent) => visual.push(agent),
                Some(_) => {}
                None => report.note(
                    &file.name,
                    JsonPath::root().key(key).index(index),
                    format!("unknown agent {name:?}: left out"),
                ),
            }
        }
    }
    visual
}

/// The Python files tools, lifecycle tools and hooks name.
fn tools_file_names(source: &read::Source) -> Vec<String> {
    let mut names = Vec::new();
    let mut add = |v: &Value| {
        if let Some(items) = v.as_sequence() {
            for item in items {
                for key in ["file", "filename"] {
                    if let Some(f) = item.get(key).and_then(Value::as_str) {
                        names.push(f.rsplit('/').next().unwrap_or(f).to_owned());
                    }
                }
            }
        }
    };
    if let Some(t) = source.file("tools") {
        for key in ["tools", "lifecycle_tools"] {
            if let Some(v) = t.value.get(key) {
                add(v);
            }
        }
    }
    if let Some(v) = source.file("hooks").and_then(|h| h.value.get("hooks")) {
        add(v);
    }
    names
}

/// Reports what else the folder holds that the import does not carry over.
fn extras(source: &read::Source, referenced: &[String], report: &mut ImportReport) {
    for shadowed in &source.shadowed {
        report.note(
            shadowed,
            "$",
            "not read: another file of the same section was (YAML first)",
        );
    }
    let read_names: Vec<&str> = source.files.values().map(|f| f.name.as_str()).collect();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&source.dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.')
            || read_names.contains(&name.as_str())
            || source.shadowed.contains(&name)
        {
            continue;
        }
        if path.is_dir() && name == "tools" {
            let mut py: Vec<PathBuf> = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            py.sort();
            for file in py {
                let file_name = file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if file_name.ends_with(".py")
                    && file_name != "__init__.py"
                    && !referenced.contains(&file_name)
                {
                    report.note(
                        &format!("tools/{file_name}"),
                        "$",
                        "named by no tool, lifecycle tool or hook: nothing to port",
                    );
                }
            }
            continue;
        }
        if name.ends_with(".py") && referenced.contains(&name) {
            continue;
        }
        let reason = match name.as_str() {
            "_pack" => {
                "not supported: nested chats (_pack/workflow_graph.json) do not exist in mozaiks"
            }
            "__init__.py" => "not imported: mozaiks imports no Python",
            _ => "not a file MozaiksAI's loader reads: not imported",
        };
        report.note(&name, "$", reason);
    }
}
