//! Warnings about entries of a workflow folder that nothing reads: a
//! leftover `requirements.txt` from a MozaiksAI folder, a
//! typo such as `handoff.json`, a Python `tools/` folder. They would be
//! silently ignored; a porter wants to hear about each.

use std::path::Path;

use super::diagnostic::Diagnostic;
use super::format::{self, spellings};
use super::load::{WORKFLOW_FILES, WorkflowFiles};

/// Folders of a workflow that something besides the loader reads:
/// `components/` (the developer console serves it).
pub(crate) const READ_FOLDERS: [&str; 1] = ["components"];

/// One warning per top-level entry of the folder that is neither a workflow
/// file ([`WORKFLOW_FILES`], in any spelling) nor one of [`READ_FOLDERS`].
/// Hidden entries (editors' and tools' business) and `*.md` notes are left
/// alone.
pub(crate) fn unread_files(files: &WorkflowFiles) -> Vec<Diagnostic> {
    let Ok(entries) = std::fs::read_dir(&files.dir) else {
        return Vec::new();
    };
    let mut names: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .filter(|(name, is_dir)| !is_read(name, *is_dir))
        .map(|(name, is_dir)| warning(&files.dir, &name, is_dir))
        .collect()
}

/// Whether `warning` (from [`unread_files`]) is about an entry of `dir` that
/// a `file` context source reads: the file itself, or the top folder of its
/// path (`data/` of `data/limits.json`).
pub(crate) fn read_by_file_sources(
    warning: &Diagnostic,
    dir: &Path,
    data_files: &[(String, Option<Vec<u8>>)],
) -> bool {
    let Ok(entry) = warning.file.strip_prefix(dir) else {
        return false;
    };
    data_files.iter().any(|(path, _)| {
        Path::new(path)
            .components()
            .next()
            .is_some_and(|top| Path::new(top.as_os_str()) == entry)
    })
}

fn is_read(name: &str, is_dir: bool) -> bool {
    if name.starts_with('.') || (!is_dir && name.ends_with(".md")) {
        return true;
    }
    if is_dir {
        return READ_FOLDERS.contains(&name);
    }
    WORKFLOW_FILES
        .iter()
        .any(|logical| spellings(logical).any(|(spelled, _)| spelled == name))
}

fn warning(dir: &Path, name: &str, is_dir: bool) -> Diagnostic {
    let what = if is_dir { "folder" } else { "file" };
    let known: Vec<String> = WORKFLOW_FILES
        .iter()
        .map(|f| format::stem(f).to_owned())
        .collect();
    let help = format!(
        "a workflow reads {} (each .json, .yaml or .yml) and the folder {}/; remove this {what} or move what it holds into one of them (docs/workflows.md lists what MozaiksAI files map to)",
        known.join(", "),
        READ_FOLDERS.join("/, ")
    );
    Diagnostic::warning(
        dir.join(name),
        "",
        format!("nothing reads this {what}; it has no effect"),
    )
    .with_help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_files_in_any_spelling_and_components_are_read() {
        assert!(is_read("agents.json", false));
        assert!(is_read("agents.yaml", false));
        assert!(is_read("tools.yml", false));
        assert!(is_read("ui_config.yaml", false));
        assert!(is_read("components", true));
        assert!(is_read(".editorconfig", false));
        assert!(is_read("NOTES.md", false));
    }

    #[test]
    fn leftovers_are_not_read() {
        assert!(!is_read("hooks.json", false) || WORKFLOW_FILES.contains(&"hooks.json"));
        assert!(!is_read("ui_config.yaml.bak", false));
        assert!(!is_read("handoff.json", false));
        assert!(!is_read("tools", true));
        assert!(!is_read("agents.json", true));
    }
}
