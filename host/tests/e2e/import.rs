//! `mozaiks import mozaiksai`, run as a real process on the fixture
//! MozaiksAI folders (tests/fixtures/import/mozaiksai/workflows/).

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::{Scratch, repo_root};

fn fixture(case: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/import/mozaiksai/workflows")
        .join(case)
}

fn mozaiks(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn imports_a_folder_prints_the_report_and_says_which_tools_to_port() {
    let scratch = Scratch::new("import");
    let src = fixture("HelloWorld");
    let out = scratch.0.join("workflows/HelloWorld");
    let output = mozaiks(
        &[
            "import",
            "mozaiksai",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &scratch.0,
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    // The report, printed and written beside the folder.
    let report =
        std::fs::read_to_string(scratch.0.join("workflows/HelloWorld.import-report.txt")).unwrap();
    assert!(
        stdout.starts_with(&report),
        "stdout:\n{stdout}\nreport:\n{report}"
    );
    assert!(
        report.contains(
            "- tools.yaml: $.tools[0].agent[1]: unknown agent \"GreeterAgent\": left out"
        ),
        "{report}"
    );
    assert!(
        report.contains("- helloworld-greet.greet <- greet.py (tool)"),
        "{report}"
    );
    assert!(
        stdout.trim_end().ends_with(
            "The result validates except for the tools still to be ported: helloworld-greet.greet"
        ),
        "{stdout}"
    );
    for file in [
        "orchestrator.json",
        "agents.json",
        "tools.json",
        "handoffs.json",
        "context_variables.json",
    ] {
        assert!(out.join(file).is_file(), "{file} not written");
    }
    // The written folder is what `validate` reads: only the plugin to port
    // is missing.
    let no_plugins = scratch.0.join("no-plugins");
    std::fs::create_dir_all(&no_plugins).unwrap();
    let validate = mozaiks(
        &[
            "validate",
            out.to_str().unwrap(),
            "--plugins-dir",
            no_plugins.to_str().unwrap(),
        ],
        &scratch.0,
    );
    let problems = text(&validate.stdout);
    assert_eq!(validate.status.code(), Some(1), "{problems}");
    let lines: Vec<&str> = problems.lines().filter(|l| l.contains(": $.")).collect();
    assert_eq!(lines.len(), 1, "{problems}");
    assert!(
        lines[0].contains("tools.json: $.tools[0].plugin: unknown plugin \"helloworld-greet\""),
        "{problems}"
    );

    // A second import into the same folder writes nothing.
    let again = mozaiks(
        &[
            "import",
            "mozaiksai",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &scratch.0,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already exists and is not empty"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn without_out_it_writes_the_folder_of_the_same_name_here() {
    let scratch = Scratch::new("import-default-out");
    let output = mozaiks(
        &[
            "import",
            "mozaiksai",
            fixture("ValueEngine").to_str().unwrap(),
        ],
        &scratch.0,
    );
    // ValueEngine uses keys this branch's loader may not know yet; either
    // way the folder and the report are written.
    assert!(
        matches!(output.status.code(), Some(0 | 2)),
        "{}",
        text(&output.stderr)
    );
    assert!(scratch.0.join("ValueEngine/orchestrator.json").is_file());
    assert!(scratch.0.join("ValueEngine.import-report.txt").is_file());
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("- context_variables.json: $.definitions.previous_concept.source.query_template.enterprise_id: dropped"),
        "{stdout}"
    );
}

#[test]
fn a_file_that_does_not_parse_is_named_with_line_and_column_and_nothing_is_written() {
    let scratch = Scratch::new("import-broken");
    let src = scratch.0.join("Broken");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("orchestrator.yaml"), "workflow_name: Broken\n").unwrap();
    std::fs::write(
        src.join("agents.yaml"),
        "agents:\n  - name: A\n    system_message: [unclosed\n",
    )
    .unwrap();
    std::fs::write(src.join("tools.json"), "{\n  \"tools\": [,]\n}\n").unwrap();
    let out = scratch.0.join("out");
    let output = mozaiks(
        &[
            "import",
            "mozaiksai",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &scratch.0,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let agents = format!("{}:", src.join("agents.yaml").display());
    let tools = format!("{}:2:13: expected value", src.join("tools.json").display());
    assert!(
        stderr.lines().any(|l| l.starts_with(&agents)
            && l[agents.len()..]
                .split(':')
                .next()
                .unwrap()
                .parse::<u32>()
                .is_ok()),
        "{stderr}"
    );
    assert!(stderr.contains(&tools), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_result_with_other_problems_is_written_and_exits_2_listing_them() {
    let scratch = Scratch::new("import-problems");
    let src = scratch.0.join("Typed");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("orchestrator.yaml"),
        "workflow_name: Typed\norchestration_pattern: DefaultPattern\n",
    )
    .unwrap();
    std::fs::write(
        src.join("agents.yaml"),
        "agents:\n- {name: A, system_message: hi}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("context_variables.yaml"),
        "definitions:\n- {name: flag, type: boolean, source: {type: state, default: false}}\n",
    )
    .unwrap();
    // MozaiksAI compared a boolean with a string and never matched; mozaiks
    // refuses it at load.
    std::fs::write(
        src.join("handoffs.yaml"),
        "handoff_rules:\n- {source_agent: A, target_agent: terminate, handoff_type: condition, condition: '${flag} == \"yes\"'}\n",
    )
    .unwrap();
    let out = scratch.0.join("Typed");
    let out = out.with_file_name("TypedOut");
    let output = mozaiks(
        &[
            "import",
            "mozaiksai",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &scratch.0,
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(out.join("handoffs.json").is_file());
    assert!(
        stdout.contains("The result does not validate yet; besides the tools still to be ported (none), the loader reports:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TypedOut/handoffs.json: $.handoff_rules[0].condition:"),
        "{stdout}"
    );
}
