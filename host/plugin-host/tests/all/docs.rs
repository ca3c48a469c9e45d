//! `docs/security.md` states the limits the code enforces: every number on
//! it is the constant's value.

use std::time::Duration;

use mozaiks_plugin_host as host;

#[test]
fn security_md_states_the_limits_the_code_enforces() {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    let page =
        std::fs::read_to_string(crate::support::repo_root().join("docs/security.md")).unwrap();
    // (constant, its value, how the page writes it)
    let limits: &[(&str, bool, &str)] = &[
        (
            "DEFAULT_MEMORY_MIB",
            host::DEFAULT_MEMORY_MIB == 64,
            "64 MiB",
        ),
        ("MAX_MEMORY_MIB", host::MAX_MEMORY_MIB == 1024, "1024 MiB"),
        (
            "DEFAULT_DEADLINE_MS",
            host::DEFAULT_DEADLINE_MS == 5000,
            "5000 ms",
        ),
        (
            "MAX_DEADLINE_MS",
            host::MAX_DEADLINE_MS == 600_000,
            "600000 ms",
        ),
        (
            "DEFAULT_MAX_OUTPUT_KIB",
            host::DEFAULT_MAX_OUTPUT_KIB == 1024,
            "1024 KiB",
        ),
        ("MAX_OUTPUT_KIB", host::MAX_OUTPUT_KIB == 65536, "65536 KiB"),
        (
            "DEFAULT_HTTP_DEADLINE_MS",
            host::DEFAULT_HTTP_DEADLINE_MS == 30_000,
            "30000 ms",
        ),
        (
            "MAX_HTTP_DEADLINE_MS",
            host::MAX_HTTP_DEADLINE_MS == 600_000,
            "600000 ms",
        ),
        (
            "DEFAULT_MAX_RESPONSE_KIB",
            host::DEFAULT_MAX_RESPONSE_KIB == 10 * 1024,
            "10240 KiB",
        ),
        (
            "MAX_RESPONSE_KIB",
            host::MAX_RESPONSE_KIB == 256 * 1024,
            "262144 KiB",
        ),
        (
            "DEFAULT_MAX_CONCURRENT_REQUESTS",
            host::DEFAULT_MAX_CONCURRENT_REQUESTS == 4,
            "| 4 |",
        ),
        (
            "MAX_CONCURRENT_REQUESTS",
            host::MAX_CONCURRENT_REQUESTS == 32,
            "| 32 |",
        ),
        (
            "MAX_ARGUMENTS_BYTES",
            host::MAX_ARGUMENTS_BYTES == 4 * MIB,
            "4 MiB",
        ),
        (
            "MAX_TOOL_ERROR_BYTES",
            host::MAX_TOOL_ERROR_BYTES == 64 * KIB,
            "64 KiB",
        ),
        (
            "MAX_CAPTURED_OUTPUT_BYTES",
            host::MAX_CAPTURED_OUTPUT_BYTES == 64 * KIB,
            "64 KiB",
        ),
        (
            "MAX_UI_PAYLOAD_BYTES",
            host::MAX_UI_PAYLOAD_BYTES == 256 * KIB,
            "256 KiB",
        ),
        (
            "MAX_UI_COMPONENT_BYTES",
            host::MAX_UI_COMPONENT_BYTES == 128,
            "128 bytes",
        ),
        (
            "MAX_UI_ASKS_PER_CALL",
            host::MAX_UI_ASKS_PER_CALL == 20,
            "| 20 |",
        ),
        (
            "MAX_UI_EVENTS_PER_CALL",
            host::MAX_UI_EVENTS_PER_CALL == 100,
            "| 100 |",
        ),
        (
            "MAX_UI_TIMEOUT",
            host::MAX_UI_TIMEOUT == Duration::from_secs(3600),
            "3600 s",
        ),
        (
            "MAX_LOG_MESSAGE_BYTES",
            host::MAX_LOG_MESSAGE_BYTES == 16 * KIB,
            "16 KiB",
        ),
        ("MAX_LOG_FIELDS", host::MAX_LOG_FIELDS == 32, "| 32 |"),
        (
            "MAX_LOG_FIELD_KEY_BYTES",
            host::MAX_LOG_FIELD_KEY_BYTES == 64,
            "64 bytes",
        ),
        (
            "MAX_LOG_FIELD_BYTES",
            host::MAX_LOG_FIELD_BYTES == KIB,
            "1 KiB",
        ),
        (
            "MAX_LOG_RECORDS_PER_CALL",
            host::MAX_LOG_RECORDS_PER_CALL == 1000,
            "| 1000 |",
        ),
        (
            "MAX_CONTEXT_VALUE_BYTES",
            host::MAX_CONTEXT_VALUE_BYTES == MIB,
            "1 MiB",
        ),
        (
            "MAX_CONTEXT_KEY_BYTES",
            host::MAX_CONTEXT_KEY_BYTES == 256,
            "256 bytes",
        ),
        (
            "MAX_CONTEXT_TOTAL_BYTES",
            host::MAX_CONTEXT_TOTAL_BYTES == 8 * MIB,
            "8 MiB",
        ),
        (
            "MAX_CONTEXT_CHANGES_PER_CALL",
            host::MAX_CONTEXT_CHANGES_PER_CALL == 100,
            "| 100 |",
        ),
        (
            "MAX_CONTEXT_WRITE_BYTES_PER_CALL",
            host::MAX_CONTEXT_WRITE_BYTES_PER_CALL == 8 * MIB,
            "8 MiB",
        ),
        (
            "DESCRIBE_DEADLINE",
            host::DESCRIBE_DEADLINE == Duration::from_secs(2),
            "2 s of CPU",
        ),
        (
            "MAX_CORE_INSTANCES_PER_COMPONENT",
            host::MAX_CORE_INSTANCES_PER_COMPONENT == 16,
            "| 16 |",
        ),
        (
            "MAX_MEMORIES_PER_COMPONENT",
            host::MAX_MEMORIES_PER_COMPONENT == 2,
            "2 a component",
        ),
        (
            "MAX_TABLES_PER_COMPONENT",
            host::MAX_TABLES_PER_COMPONENT == 8,
            "8 a component",
        ),
        (
            "MAX_TABLE_ELEMENTS",
            host::MAX_TABLE_ELEMENTS == 20_000,
            "| 20000 |",
        ),
        (
            "MAX_WASM_STACK_BYTES",
            host::MAX_WASM_STACK_BYTES == MIB,
            "1 MiB",
        ),
        (
            "MAX_COMPONENT_BYTES",
            host::MAX_COMPONENT_BYTES == 64 * MIB,
            "64 MiB",
        ),
        (
            "MAX_COMPONENT_FUNCTIONS",
            host::MAX_COMPONENT_FUNCTIONS == 50_000,
            "| 50000 |",
        ),
        (
            "MAX_CONCURRENT_COMPILES",
            host::MAX_CONCURRENT_COMPILES == 2,
            "| 2 |",
        ),
        (
            "DEFAULT_COMPILE_MEMORY_MIB",
            host::DEFAULT_COMPILE_MEMORY_MIB == 2048,
            "2048 MiB",
        ),
        (
            "DEFAULT_COMPILE_TIMEOUT",
            host::DEFAULT_COMPILE_TIMEOUT == Duration::from_secs(60),
            "| 60 s |",
        ),
        (
            "DEFAULT_MAX_CONCURRENT_CALLS",
            host::DEFAULT_MAX_CONCURRENT_CALLS == 256,
            "| 256 |",
        ),
        (
            "DEFAULT_MAX_CALLS_PER_PLUGIN",
            host::DEFAULT_MAX_CALLS_PER_PLUGIN == 64,
            "| 64 |",
        ),
    ];
    for (constant, value_matches, written) in limits {
        assert!(
            value_matches,
            "{constant} changed: update docs/security.md and this test"
        );
        let row = page
            .lines()
            .find(|line| line.starts_with('|') && line.contains(&format!("`{constant}`")))
            .unwrap_or_else(|| panic!("docs/security.md has no row for {constant}"));
        assert!(
            row.contains(written),
            "the row of {constant} should say {written}: {row}"
        );
    }
}
