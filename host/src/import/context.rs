//! `context_variables.yaml` to `context_variables.json` (and the agents'
//! `context_variables` lists).
//!
//! Source kinds: `config` → `environment`; `state` → `static` with its
//! triggers; `computed` → `derived` when the producing tool or agent can
//! be told, else `static`; `data_reference` → `database`; `file` → `file`
//! (the file copied into the workflow's `data/`); `data_entity`,
//! `external` and unknown kinds → `static` (null), reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::normalise::{agent, list_or_map, loose_bool, non_empty};
use super::orchestrator::is_empty;
use super::outputs::{Outputs, field_path};
use super::read::{SourceFile, parse};
use super::report::ImportReport;
use super::tools::ToolOut;
use crate::workflow::diagnostic::JsonPath;

/// What the rest of the import needs to know about the tools and outputs.
#[derive(Debug)]
pub(crate) struct Producers<'a> {
    /// The converted tools.
    pub tools: &'a [ToolOut],
    /// The converted structured outputs.
    pub outputs: &'a Outputs,
    /// The agents' names.
    pub agents: &'a [String],
}

/// The converted context variables.
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// The `definitions` of context_variables.json, in file order.
    pub definitions: Vec<Value>,
    /// Declared variable → its type.
    pub declared: BTreeMap<String, String>,
    /// Agent → the variables it sees.
    pub visible: BTreeMap<String, Vec<String>>,
    /// Files copied into the workflow: relative path → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Converts the file of the workflow folder `dir`.
pub(crate) fn convert(
    file: &SourceFile,
    dir: &Path,
    producers: &Producers<'_>,
    report: &mut ImportReport,
) -> Context {
    let f = file.name.as_str();
    let mut out = Context::default();
    let root = JsonPath::root();
    if let Some(defs) = file.value.get("definitions").filter(|v| !v.is_null()) {
        for item in list_or_map(defs, &root.key("definitions"), "name") {
            let (path, raw) = match item {
                Ok(item) => item,
                Err(path) => {
                    report.note(f, path, "not a variable definition: skipped");
                    continue;
                }
            };
            let Some(name) = non_empty(raw.get("name")).map(str::to_owned) else {
                report.note(f, path, "a definition without a name: skipped");
                continue;
            };
            if out.declared.contains_key(&name) {
                report.note(
                    f,
                    path,
                    format!("a second definition of \"{name}\": skipped"),
                );
                continue;
            }
            let mut conv = Conversion {
                f,
                dir,
                report,
                files: &mut out.files,
                producers,
            };
            let def = conv.definition(&name, &raw, &path);
            let var_type = def
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_owned();
            out.declared.insert(name, var_type);
            out.definitions.push(def);
        }
    }
    if let Some(list) = file.value.get("agents").filter(|v| !v.is_null()) {
        let path = root.key("agents");
        let mut any = false;
        for item in list_or_map(list, &path, "agent_name") {
            let (p, raw) = match item {
                Ok(item) => item,
                Err(p) => {
                    report.note(f, p, "not an {agent_name, variables} object: skipped");
                    continue;
                }
            };
            let who = ["agent_name", "agent", "name"]
                .iter()
                .find_map(|k| non_empty(raw.get(*k)))
                .unwrap_or_default();
            let Some(who) = agent(who, producers.agents) else {
                report.note(f, p, format!("unknown agent \"{who}\": skipped"));
                continue;
            };
            let vars = raw
                .get("variables")
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            let seen = out.visible.entry(who).or_default();
            for (i, v) in vars.iter().enumerate() {
                match v.as_str() {
                    Some(v) if out.declared.contains_key(v) => {
                        if !seen.iter().any(|s| s == v) {
                            seen.push(v.to_owned());
                            any = true;
                        }
                    }
                    _ => report.note(
                        f,
                        p.key("variables").index(i),
                        "not a declared variable: left out",
                    ),
                }
            }
        }
        if any {
            report.note(
                f,
                path,
                "became each agent's context_variables in agents.json: mozaiks shows these variables, with their values, in the agent's system message (MozaiksAI stored the list but did not inject it)",
            );
        }
    }
    out
}

struct Conversion<'a, 'r> {
    f: &'a str,
    dir: &'a Path,
    report: &'r mut ImportReport,
    files: &'r mut BTreeMap<String, Vec<u8>>,
    producers: &'a Producers<'a>,
}

impl Conversion<'_, '_> {
    fn note(&mut self, path: &JsonPath, reason: impl Into<String>) {
        self.report.note(self.f, path, reason);
    }

    fn definition(&mut self, name: &str, raw: &Mapping, path: &JsonPath) -> Value {
        let empty = Mapping::new();
        let source = raw
            .get("source")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let kind = non_empty(source.get("type")).unwrap_or("state");
        let var_type = self.var_type(raw.get("type"), source.get("default"), &path.key("type"));
        let sp = path.key("source");
        let converted = match kind {
            "config" => self.config(source, &sp, &var_type),
            "state" | "static" => self.state(source, &sp, &var_type),
            "computed" => self.computed(name, source, &sp, &var_type),
            "data_reference" => self.data_reference(source, &sp, &var_type),
            "file" => self.file(source, &sp, &var_type),
            "data_entity" | "external" => {
                self.note(
                    &sp.key("type"),
                    format!("{kind} not supported: declared as static (null) so conditions that name it still load; a tool must now fill it"),
                );
                static_source(None)
            }
            other => {
                self.note(
                    &sp.key("type"),
                    format!("unknown source type \"{other}\" (MozaiksAI dropped every variable for it): declared as static (null)"),
                );
                static_source(None)
            }
        };
        for (key, value) in raw {
            let key = key.as_str().unwrap_or_default();
            if !["name", "type", "description", "source"].contains(&key) && !is_empty(value) {
                self.note(
                    &path.key(key),
                    "not a key of a MozaiksAI definition: not imported",
                );
            }
        }
        let mut def = Mapping::new();
        def.insert("name".into(), name.into());
        def.insert("type".into(), var_type.into());
        if let Some(d) = non_empty(raw.get("description")) {
            def.insert("description".into(), d.into());
        }
        def.insert("source".into(), Value::Mapping(converted));
        Value::Mapping(def)
    }

    /// MozaiksAI's free-form `type`, as one of mozaiks' JSON types.
    fn var_type(
        &mut self,
        raw: Option<&Value>,
        default: Option<&Value>,
        path: &JsonPath,
    ) -> String {
        let t = raw.and_then(Value::as_str).map(|t| t.trim().to_lowercase());
        let mapped = match t.as_deref() {
            Some("boolean" | "bool") => Some("boolean"),
            Some("integer" | "int") => Some("integer"),
            Some("string" | "str" | "text") => Some("string"),
            Some("number" | "float" | "double") => Some("number"),
            Some("object" | "dict" | "json" | "map") => Some("object"),
            Some("array" | "list") => Some("array"),
            _ => None,
        };
        if let Some(m) = mapped {
            return m.to_owned();
        }
        let inferred = match default {
            Some(Value::Bool(_)) => "boolean",
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
            Some(Value::Number(_)) => "number",
            Some(Value::Sequence(_)) => "array",
            Some(Value::Mapping(_)) => "object",
            _ => "string",
        };
        let shown = t.map_or_else(|| "none".to_owned(), |t| format!("\"{t}\""));
        self.note(
            path,
            format!("type {shown} is not a JSON type: {inferred} (from the default)"),
        );
        inferred.to_owned()
    }

    /// The default, coerced as MozaiksAI coerces booleans and integers;
    /// dropped (reported) when it does not fit the type.
    fn default(&mut self, source: &Mapping, path: &JsonPath, var_type: &str) -> Option<Value> {
        let value = source.get("default")?;
        if value.is_null() {
            return None;
        }
        let fits = match (var_type, value) {
            ("boolean", v) => loose_bool(v).map(Value::Bool),
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => Some(value.clone()),
            ("integer", Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
            ("number", Value::Number(_)) => Some(value.clone()),
            ("string", Value::String(_)) => Some(value.clone()),
            ("object", Value::Mapping(_)) => Some(value.clone()),
            ("array", Value::Sequence(_)) => Some(value.clone()),
            _ => None,
        };
        if fits.is_none() {
            self.note(
                &path.key("default"),
                format!("does not fit the type {var_type}: dropped (null)"),
            );
        }
        fits
    }

    fn config(&mut self, s: &Mapping, p: &JsonPath, t: &str) -> Mapping {
        let default = self.default(s, p, t);
        let Some(env_var) = non_empty(s.get("env_var")) else {
            // MozaiksAI used the default when no env_var is given.
            return static_source(default);
        };
        if default.is_some() {
            self.note(
                &p.key("default"),
                format!("now used when {env_var} is unset (MozaiksAI ignored it and gave null)"),
            );
        }
        let mut out = Mapping::new();
        out.insert("type".into(), "environment".into());
        out.insert("env_var".into(), env_var.into());
        if let Some(d) = default {
            out.insert("default".into(), d);
        }
        if s.get("required").and_then(loose_bool) == Some(true) {
            out.insert("required".into(), true.into());
        }
        self.rest(s, p, &["type", "env_var", "default", "required"]);
        out
    }

    fn state(&mut self, s: &Mapping, p: &JsonPath, t: &str) -> Mapping {
        let default = self.default(s, p, t);
        let mut out = static_source(default);
        if let Some(triggers) = s.get("triggers").and_then(Value::as_sequence) {
            let mut list = Vec::new();
            for (i, trigger) in triggers.iter().enumerate() {
                if let Some(t) = self.trigger(trigger, &p.key("triggers").index(i)) {
                    list.push(t);
                }
            }
            if !list.is_empty() {
                out.insert("triggers".into(), Value::Sequence(list));
            }
        }
        if s.get("persist").is_some() {
            self.note(
                &p.key("persist"),
                "dropped: mozaiks keeps every chat's context variables across restarts",
            );
        }
        self.rest(s, p, &["type", "default", "triggers", "persist"]);
        out
    }

    fn trigger(&mut self, raw: &Value, p: &JsonPath) -> Option<Value> {
        let Some(raw) = raw.as_mapping() else {
            self.note(p, "not a trigger object: skipped");
            return None;
        };
        let mut out = Mapping::new();
        match non_empty(raw.get("type")) {
            Some("agent_text") => {
                let who = non_empty(raw.get("agent")).unwrap_or_default();
                let Some(who) = agent(who, self.producers.agents) else {
                    self.note(
                        &p.key("agent"),
                        format!("unknown agent \"{who}\": trigger skipped"),
                    );
                    return None;
                };
                let matcher = raw.get("match").and_then(Value::as_mapping);
                let kinds: Vec<(&str, &str)> = ["equals", "contains", "regex"]
                    .into_iter()
                    .filter_map(|k| Some((k, matcher?.get(k)?.as_str()?)))
                    .collect();
                let [(kind, text)] = kinds.as_slice() else {
                    self.note(
                        &p.key("match"),
                        "needs exactly one of equals, contains, regex: trigger skipped",
                    );
                    return None;
                };
                out.insert("type".into(), "agent_text".into());
                out.insert("agent".into(), who.into());
                let mut m = Mapping::new();
                m.insert((*kind).into(), (*text).into());
                out.insert("match".into(), Value::Mapping(m));
                if raw.get("ui_hidden").and_then(loose_bool) == Some(true) {
                    out.insert("ui_hidden".into(), true.into());
                }
                for (key, value) in raw {
                    let key = key.as_str().unwrap_or_default();
                    if !["type", "agent", "match", "ui_hidden"].contains(&key) && !is_empty(value) {
                        self.note(
                            &p.key(key),
                            "not a key of an agent_text trigger: not imported",
                        );
                    }
                }
            }
            Some("ui_response") => {
                let tool = non_empty(raw.get("tool")).unwrap_or_default();
                let known = self.producers.tools.iter().find(|t| {
                    t.name == tool || t.entry.get("function").and_then(Value::as_str) == Some(tool)
                });
                let Some(known) = known else {
                    self.note(
                        &p.key("tool"),
                        format!("unknown tool \"{tool}\": trigger skipped"),
                    );
                    return None;
                };
                let Some(key) = non_empty(raw.get("response_key")) else {
                    self.note(p, "needs response_key: trigger skipped");
                    return None;
                };
                out.insert("type".into(), "ui_response".into());
                out.insert("tool".into(), known.name.clone().into());
                out.insert("response_key".into(), key.into());
            }
            other => {
                self.note(
                    &p.key("type"),
                    format!(
                        "unknown trigger type {}: skipped",
                        other.map_or("(none)".to_owned(), |o| format!("\"{o}\""))
                    ),
                );
                return None;
            }
        }
        Some(Value::Mapping(out))
    }

    fn computed(&mut self, name: &str, s: &Mapping, p: &JsonPath, t: &str) -> Mapping {
        let default = self.default(s, p, t);
        let computation = non_empty(s.get("computation"));
        let by_tool = computation.and_then(|c| {
            self.producers.tools.iter().find(|tool| {
                tool.name == c || tool.entry.get("function").and_then(Value::as_str) == Some(c)
            })
        });
        let mut out = Mapping::new();
        out.insert("type".into(), "derived".into());
        if let Some(tool) = by_tool {
            out.insert("tool".into(), tool.name.clone().into());
        } else {
            let outputs = self.producers.outputs;
            let by_agent: Vec<(String, String)> = outputs
                .registry
                .iter()
                .filter_map(|(a, m)| {
                    let path = field_path(outputs.models.schema(m)?, name)?;
                    Some((a.clone(), path))
                })
                .collect();
            match by_agent.as_slice() {
                [(who, field)] => {
                    out.insert("agent".into(), who.clone().into());
                    if field != name {
                        out.insert("field".into(), field.clone().into());
                    }
                }
                _ => {
                    let why = if by_agent.is_empty() {
                        "no tool is named by `computation` and no agent's structured output has this field"
                    } else {
                        "several agents' structured outputs have this field"
                    };
                    self.note(
                        &p.key("type"),
                        format!("computed became static: cannot tell which tool or agent sets it ({why}); tools may still set it"),
                    );
                    self.rest_dropped(
                        s,
                        p,
                        &["computation", "inputs", "output_type", "persist_to"],
                    );
                    return static_source(default);
                }
            }
        }
        if let Some(d) = default {
            out.insert("default".into(), d);
        }
        self.rest_dropped(
            s,
            p,
            &["computation", "inputs", "output_type", "persist_to"],
        );
        self.rest(
            s,
            p,
            &[
                "type",
                "default",
                "computation",
                "inputs",
                "output_type",
                "persist_to",
            ],
        );
        out
    }

    fn data_reference(&mut self, s: &Mapping, p: &JsonPath, t: &str) -> Mapping {
        let default = self.default(s, p, t);
        let Some(collection) = non_empty(s.get("collection")) else {
            self.note(p, "data_reference without a collection: declared as static");
            return static_source(default);
        };
        let mut query = Mapping::new();
        if let Some(template) = s.get("query_template").and_then(Value::as_mapping) {
            for (key, value) in template {
                let key = key.as_str().unwrap_or_default();
                let qp = p.key("query_template").key(key);
                match value.as_str().and_then(runtime_key) {
                    Some("app_id" | "enterprise_id") => self.note(
                        &qp,
                        "dropped: a database source reads only the chat's app's own data store",
                    ),
                    Some(k @ ("user_id" | "chat_id")) => {
                        query.insert(key.into(), format!("{{{{runtime.{k}}}}}").into());
                    }
                    Some(other) => {
                        self.note(
                            &qp,
                            format!("{{{{runtime.{other}}}}} cannot be filled (only app_id, user_id, chat_id): the variable is declared as static instead"),
                        );
                        return static_source(default);
                    }
                    None => {
                        query.insert(key.into(), value.clone());
                    }
                }
            }
        }
        let mut out = Mapping::new();
        out.insert("type".into(), "database".into());
        out.insert("collection".into(), collection.into());
        out.insert("query".into(), Value::Mapping(query));
        let fields: Vec<&str> = s
            .get("fields")
            .and_then(Value::as_sequence)
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match fields.as_slice() {
            [] => {}
            [one] => {
                out.insert("field".into(), (*one).into());
            }
            many => self.note(
                &p.key("fields"),
                format!(
                    "a projection of {} fields: the whole document is read instead",
                    many.len()
                ),
            ),
        }
        if let Some(d) = default {
            out.insert("default".into(), d);
        }
        if let Some(db) = non_empty(s.get("database_name")) {
            self.note(
                &p.key("database_name"),
                format!("dropped: mozaiks reads the app's own data store (the tools' `data` interface), not the MongoDB database \"{db}\"; the documents must be in its collection \"{collection}\""),
            );
        }
        if let Some(db_type) = non_empty(s.get("db_type")).filter(|d| *d != "mongodb") {
            self.note(
                &p.key("db_type"),
                format!("\"{db_type}\" dropped: MozaiksAI supported mongodb only"),
            );
        }
        if s.get("refresh_strategy").is_some_and(|v| !is_empty(v)) {
            self.note(
                &p.key("refresh_strategy"),
                "dropped: unused by MozaiksAI; the value is read when a run starts",
            );
        }
        self.rest(
            s,
            p,
            &[
                "type",
                "collection",
                "query_template",
                "fields",
                "default",
                "database_name",
                "db_type",
                "refresh_strategy",
            ],
        );
        out
    }

    fn file(&mut self, s: &Mapping, p: &JsonPath, t: &str) -> Mapping {
        let default = self.default(s, p, t);
        let Some(path) = non_empty(s.get("path")) else {
            self.note(p, "file source without a path: declared as static");
            return static_source(default);
        };
        let format = non_empty(s.get("format")).unwrap_or("json").to_lowercase();
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_secret_name(&name) {
            self.note(
                &p.key("path"),
                "refused: it looks like a secrets file; declared as static",
            );
            return static_source(default);
        }
        let Some(found) = self.find(path) else {
            let required = s.get("required").and_then(loose_bool) == Some(true);
            self.note(
                &p.key("path"),
                format!("\"{path}\" not found from the repository root or the workflow folder{}: declared as static", if required { " (required: MozaiksAI failed the context load)" } else { "" }),
            );
            return static_source(default);
        };
        let bytes = match std::fs::read(&found) {
            Ok(b) => b,
            Err(err) => {
                self.note(
                    &p.key("path"),
                    format!("cannot read {}: {err}; declared as static", found.display()),
                );
                return static_source(default);
            }
        };
        let (bytes, out_format, stem_ext) = match format.as_str() {
            "yaml" | "yml" => match std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| parse(&found, t).ok())
            {
                Some(v) => match serde_json::to_vec_pretty(&v) {
                    Ok(mut json) => {
                        json.push(b'\n');
                        self.note(&p.key("format"), "yaml: the file was converted to JSON");
                        (json, "json", Some("json"))
                    }
                    Err(_) => (bytes, "text", None),
                },
                None => {
                    self.note(&p.key("format"), "yaml that does not parse: read as text");
                    (bytes, "text", None)
                }
            },
            "json" => (bytes, "json", None),
            "text" | "txt" => (bytes, "text", None),
            other => {
                self.note(
                    &p.key("format"),
                    format!("unknown format \"{other}\": text"),
                );
                (bytes, "text", None)
            }
        };
        let file_name = match stem_ext {
            Some(ext) => format!(
                "{}.{ext}",
                Path::new(&name)
                    .file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            ),
            None => name,
        };
        let mut rel = format!("data/{file_name}");
        let mut n = 2;
        while self.files.contains_key(&rel) {
            rel = format!("data/{n}-{file_name}");
            n += 1;
        }
        self.note(
            &p.key("path"),
            format!("copied from \"{path}\" to \"{rel}\": a file source reads inside the workflow folder only (the copy does not follow later changes of the original)"),
        );
        self.files.insert(rel.clone(), bytes);
        if let Some(enc) = non_empty(s.get("encoding"))
            .filter(|e| !matches!(e.to_lowercase().as_str(), "utf-8" | "utf8"))
        {
            self.note(
                &p.key("encoding"),
                format!("\"{enc}\" dropped: files are read as UTF-8"),
            );
        }
        let mut out = Mapping::new();
        out.insert("type".into(), "file".into());
        out.insert("path".into(), rel.into());
        out.insert("format".into(), out_format.into());
        if let Some(d) = default {
            out.insert("default".into(), d);
        }
        if s.get("required").and_then(loose_bool) == Some(true) {
            out.insert("required".into(), true.into());
        }
        self.rest(
            s,
            p,
            &["type", "path", "format", "encoding", "required", "default"],
        );
        out
    }

    /// `path` as MozaiksAI resolved it (from the repository root, the
    /// folder two levels above `workflows/<Name>`), else in the workflow
    /// folder.
    fn find(&self, path: &str) -> Option<PathBuf> {
        let repo = self.dir.parent().and_then(Path::parent);
        let candidates = repo
            .map(|r| r.join(path))
            .into_iter()
            .chain([self.dir.join(path)]);
        candidates.into_iter().find(|c| c.is_file())
    }

    /// Reports source keys listed in `dropped` that are set.
    fn rest_dropped(&mut self, s: &Mapping, p: &JsonPath, dropped: &[&str]) {
        for key in dropped {
            if s.get(*key).is_some_and(|v| !is_empty(v)) {
                self.note(
                    &p.key(key),
                    "dropped: MozaiksAI did not act on it (the producer sets the value)",
                );
            }
        }
    }

    /// Reports every source key not in `known`.
    fn rest(&mut self, s: &Mapping, p: &JsonPath, known: &[&str]) {
        for (key, value) in s {
            let key = key.as_str().unwrap_or_default();
            if !known.contains(&key) && !is_empty(value) {
                self.note(
                    &p.key(key),
                    "not a key of this MozaiksAI source: not imported",
                );
            }
        }
    }
}

fn static_source(default: Option<Value>) -> Mapping {
    let mut out = Mapping::new();
    out.insert("type".into(), "static".into());
    if let Some(d) = default {
        out.insert("default".into(), d);
    }
    out
}

/// `app_id` of `"{{runtime.app_id}}"`.
fn runtime_key(text: &str) -> Option<&str> {
    text.trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim()
        .strip_prefix("runtime.")
}

/// File names MozaiksAI refused to read as context: `.env*`, `*.pem`,
/// `*.key`, `*.pfx`, `*.p12`.
fn is_secret_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    lower.starts_with(".env")
        || [".pem", ".key", ".pfx", ".p12"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}
