//! [`Config::from_vars`] over given variables.

use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    Config::from_vars(
        &Vars::from_pairs(pairs.iter().copied()),
        &Overrides::default(),
    )
}

fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
    load(pairs)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn development_needs_no_keys_and_allows_any_origin() {
    let config = load(&[("ENVIRONMENT", "development")]).unwrap();
    assert!(!config.access.enabled);
    assert!(config.cors_origins.is_empty());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
}

#[test]
fn production_is_the_default_and_fails_closed_without_keys() {
    let found = problems(&[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("MOZAIKS_API_KEYS: auth is on"),
        "{}",
        found[0]
    );
    let config = load(&[("MOZAIKS_API_KEYS", "0123456789abcdef=shop")]).unwrap();
    assert_eq!(config.environment, Environment::Production);
    assert!(config.access.enabled);
    assert_eq!(config.access.keys.len(), 1);
}

#[test]
fn a_wildcard_origin_is_refused_outside_development() {
    let found = problems(&[
        ("MOZAIKS_API_KEYS", "0123456789abcdef=shop"),
        ("MOZAIKS_CORS_ORIGINS", "https://ok.example, *"),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("only with ENVIRONMENT=development"),
        "{}",
        found[0]
    );
    let config = load(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_CORS_ORIGINS", "*"),
    ])
    .unwrap();
    assert_eq!(config.cors_origins, ["*"]);
}

#[test]
fn auth_switched_off_in_production_and_unknown_variables_are_warned_about() {
    let config = load(&[("MOZAIKS_AUTH", "off"), ("MOZAIKS_DATADIR", "x")]).unwrap();
    assert!(!config.access.enabled);
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert!(config.warnings[0].starts_with("MOZAIKS_DATADIR is not a mozaiks setting"));
}

#[test]
fn flags_win_over_the_environment_and_say_so() {
    let overrides = Overrides {
        addr: Some("127.0.0.1:0".to_owned()),
        development_by_default: true,
        ..Overrides::default()
    };
    let vars = Vars::from_pairs([("MOZAIKS_ADDR", "0.0.0.0:9000")]);
    let config = Config::from_vars(&vars, &overrides).unwrap();
    assert_eq!(config.addr, "127.0.0.1:0");
    assert_eq!(config.environment, Environment::Development);
    let addr = config
        .settings()
        .iter()
        .find(|s| s.name == "MOZAIKS_ADDR")
        .unwrap();
    assert_eq!(addr.source, "flag");
}

#[test]
fn numbers_must_be_positive_and_every_bad_one_is_named() {
    let found = problems(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_SHUTDOWN_GRACE_SECS", "0"),
        ("MOZAIKS_LOG_KEEP", "-1"),
        ("MOZAIKS_RETENTION_DAYS", "soon"),
    ]);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("MOZAIKS_SHUTDOWN_GRACE_SECS=`0`"))
    );
    assert!(found.iter().any(|p| p.starts_with("MOZAIKS_LOG_KEEP=`-1`")));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("MOZAIKS_RETENTION_DAYS=`soon`"))
    );
}

#[test]
fn the_instance_slots_default_to_the_engines_and_can_be_set() {
    let config = load(&[("ENVIRONMENT", "development")]).unwrap();
    assert_eq!(
        (config.plugin_slots, config.plugin_slots_per_plugin),
        (256, 64)
    );
    let config = load(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_PLUGIN_SLOTS", "32"),
        ("MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN", "8"),
    ])
    .unwrap();
    assert_eq!(
        (config.plugin_slots, config.plugin_slots_per_plugin),
        (32, 8)
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let found = problems(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_PLUGIN_SLOTS", "0"),
    ]);
    assert!(found[0].starts_with("MOZAIKS_PLUGIN_SLOTS"), "{found:?}");
}

#[test]
fn idle_runs_unload_after_the_default_a_setting_or_never_with_zero() {
    let dev = [("ENVIRONMENT", "development")];
    assert_eq!(load(&dev).unwrap().idle_run, Some(DEFAULT_IDLE_RUN));
    let set = load(&[dev[0], ("MOZAIKS_IDLE_RUN_SECS", "30")]).unwrap();
    assert_eq!(set.idle_run, Some(Duration::from_secs(30)));
    let never = load(&[dev[0], ("MOZAIKS_IDLE_RUN_SECS", "0")]).unwrap();
    assert_eq!(never.idle_run, None);
    let found = problems(&[dev[0], ("MOZAIKS_IDLE_RUN_SECS", "soon")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("MOZAIKS_IDLE_RUN_SECS"),
        "{}",
        found[0]
    );
}

/// `mozaiks chats export` reads the store as the server does (the secrets
/// directory included), and a problem elsewhere in the configuration does
/// not stop it.
#[test]
fn the_store_alone_reads_mongo_uri_from_the_secrets_directory() {
    let dir = std::env::temp_dir().join(format!("mozaiks-store-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("MONGO_URI"), "mongodb://db.internal:27017\n").unwrap();
    let secrets_dir = dir.to_str().unwrap();
    let vars = Vars::from_pairs([("MOZAIKS_SECRETS_DIR", secrets_dir), ("MONGO_DB", "chats")]);
    let store = Config::store_from_vars(&vars, &Overrides::default()).unwrap();
    let StoreConfig::Mongo(mongo) = store else {
        panic!("the embedded store was chosen: {store:?}");
    };
    assert_eq!(mongo.uri, "mongodb://db.internal:27017");
    assert_eq!(mongo.database, "chats");
    // The whole configuration refuses these variables (production without
    // API keys): the store alone does not care.
    assert!(Config::from_vars(&vars, &Overrides::default()).is_err());
    let none = Config::store_from_vars(
        &Vars::from_pairs([("MOZAIKS_DATA_DIR", "elsewhere")]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(
        matches!(&none, StoreConfig::Embedded { data_dir } if data_dir == std::path::Path::new("elsewhere")),
        "{none:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_compile_limits_default_to_the_engines_and_nonsense_is_refused() {
    let config = load(&[("ENVIRONMENT", "development")]).unwrap();
    assert_eq!(
        config.compile_limits,
        mozaiks_plugin_host::CompileLimits {
            memory_mib: 2048,
            timeout: Duration::from_secs(60),
        }
    );
    let config = load(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_COMPILE_MEMORY_MIB", "512"),
        ("MOZAIKS_COMPILE_TIMEOUT_SECS", "5"),
    ])
    .unwrap();
    assert_eq!(
        (
            config.compile_limits.memory_mib,
            config.compile_limits.timeout
        ),
        (512, Duration::from_secs(5))
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    for (name, value) in [
        ("MOZAIKS_COMPILE_MEMORY_MIB", "0"),
        ("MOZAIKS_COMPILE_MEMORY_MIB", "16"),
        ("MOZAIKS_COMPILE_MEMORY_MIB", "lots"),
        ("MOZAIKS_COMPILE_TIMEOUT_SECS", "0"),
        ("MOZAIKS_COMPILE_TIMEOUT_SECS", "86400"),
    ] {
        let found = problems(&[("ENVIRONMENT", "development"), (name, value)]);
        assert_eq!(found.len(), 1, "{name}={value}: {found:?}");
        assert!(found[0].starts_with(name), "{found:?}");
    }
}

#[test]
fn outbound_ca_files_must_exist() {
    let config = load(&[("ENVIRONMENT", "development")]).unwrap();
    assert!(config.outbound.extra_ca_files.is_empty());
    let here = std::env::current_exe().unwrap();
    let here = here.to_str().unwrap();
    let config = load(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_OUTBOUND_CA_FILES", here),
    ])
    .unwrap();
    assert_eq!(config.outbound.extra_ca_files, [PathBuf::from(here)]);
    let found = problems(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_OUTBOUND_CA_FILES", "/no/such/ca.pem"),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("/no/such/ca.pem is not a file"),
        "{}",
        found[0]
    );
}

#[test]
fn data_quotas_default_and_are_read_from_their_variables() {
    let config = load(&[("ENVIRONMENT", "development")]).unwrap();
    assert_eq!(
        config.data_limits,
        mozaiks_plugin_host::DataLimits::default()
    );
    assert_eq!(
        (
            config.data_limits.max_document_bytes,
            config.data_limits.max_documents_per_app
        ),
        (262_144, 10_000)
    );
    let config = load(&[
        ("ENVIRONMENT", "development"),
        ("MOZAIKS_DATA_MAX_DOCUMENT_BYTES", "1024"),
        ("MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP", "5"),
    ])
    .unwrap();
    assert_eq!(
        config.data_limits,
        mozaiks_plugin_host::DataLimits {
            max_document_bytes: 1024,
            max_documents_per_app: 5,
        }
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    for name in [
        "MOZAIKS_DATA_MAX_DOCUMENT_BYTES",
        "MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP",
    ] {
        let found = problems(&[("ENVIRONMENT", "development"), (name, "lots")]);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert!(found[0].starts_with(name), "{found:?}");
    }
}

/// Cluster mode is off by default; `on` needs MongoDB (refused with the
/// embedded store, naming the setting and MONGO_URI); the server id
/// defaults to `<hostname>:<port>` (an empty value is unset, as for every
/// setting) and refuses overlong ids and control characters; the lease is 10 s by default, 2 to 600 s.
#[test]
fn cluster_settings_default_to_a_single_server_and_refuse_what_cannot_work() {
    let dev = ("ENVIRONMENT", "development");
    let mongo = ("MONGO_URI", "mongodb://db.example:27017");
    let single = load(&[dev]).unwrap();
    assert_eq!(
        single.cluster,
        crate::orchestrator::ClusterSettings::default()
    );
    assert_eq!(single.cluster.lease, Duration::from_secs(10));
    let shown = single
        .settings()
        .iter()
        .find(|s| s.name == "MOZAIKS_SERVER_ID")
        .unwrap();
    assert!(shown.value.ends_with(":8080"), "{}", shown.value);
    let empty = load(&[dev, ("MOZAIKS_SERVER_ID", " ")]).unwrap();
    assert_eq!(empty.cluster.server_id, None);

    let on = load(&[
        dev,
        mongo,
        ("MOZAIKS_CLUSTER", "on"),
        ("MOZAIKS_SERVER_ID", "web-1"),
        ("MOZAIKS_LEASE_SECS", "5"),
    ])
    .unwrap();
    assert!(on.cluster.enabled);
    assert_eq!(on.cluster.server_id.as_deref(), Some("web-1"));
    assert_eq!(on.cluster.lease, Duration::from_secs(5));

    let embedded = problems(&[dev, ("MOZAIKS_CLUSTER", "on")]);
    assert_eq!(embedded.len(), 1, "{embedded:?}");
    assert!(
        embedded[0].starts_with("MOZAIKS_CLUSTER") && embedded[0].contains("MONGO_URI"),
        "{}",
        embedded[0]
    );
    let long = "x".repeat(129);
    for (name, value) in [
        ("MOZAIKS_CLUSTER", "yes"),
        ("MOZAIKS_SERVER_ID", long.as_str()),
        ("MOZAIKS_SERVER_ID", "web\n1"),
        ("MOZAIKS_LEASE_SECS", "1"),
        ("MOZAIKS_LEASE_SECS", "601"),
        ("MOZAIKS_LEASE_SECS", "soon"),
    ] {
        let found = problems(&[dev, mongo, (name, value)]);
        assert_eq!(found.len(), 1, "{name}={value:?}: {found:?}");
        assert!(found[0].starts_with(name), "{}", found[0]);
    }
    let edge = load(&[
        dev,
        mongo,
        ("MOZAIKS_LEASE_SECS", "600"),
        ("MOZAIKS_SERVER_ID", &"y".repeat(128)),
    ]);
    assert!(edge.is_ok());
}
