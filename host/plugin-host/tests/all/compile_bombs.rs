//! Components that would cost the compiler minutes and gigabytes are
//! refused before compiling, and compilations run a few at a time.

use mozaiks_plugin_host::{
    EngineConfig, LoadError, MAX_COMPONENT_BYTES, MAX_COMPONENT_FUNCTIONS, MAX_CONCURRENT_COMPILES,
    Manifest, PluginEngine,
};

use crate::support::{adversary_dir, engine};

/// A component holding one core module of `n` empty functions.
fn component_with_functions(n: u32) -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, Function, FunctionSection, Module, ModuleSection, TypeSection,
    };
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut funcs = FunctionSection::new();
    let mut code = CodeSection::new();
    let mut body = Function::new([]);
    body.instructions().end();
    for _ in 0..n {
        funcs.function(0);
        code.function(&body);
    }
    let mut module = Module::new();
    module.section(&types).section(&funcs).section(&code);
    let mut component = wasm_encoder::Component::new();
    component.section(&ModuleSection(&module));
    component.finish()
}

async fn load(engine: &PluginEngine, bytes: Vec<u8>) -> Result<(), LoadError> {
    engine
        .load_bytes(
            Manifest::new("bomb"),
            std::env::temp_dir().join("plugin.toml"),
            "bomb.wasm".into(),
            bytes,
        )
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_component_with_too_many_functions_is_refused_before_compiling() {
    let bytes = component_with_functions(MAX_COMPONENT_FUNCTIONS + 1);
    let err = load(&engine(), bytes).await.unwrap_err();
    assert!(matches!(err, LoadError::TooLarge { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("functions") && text.contains(&MAX_COMPONENT_FUNCTIONS.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_component_over_the_size_limit_is_refused_before_compiling() {
    // A valid component with one huge custom section.
    let mut component = wasm_encoder::Component::new();
    component.section(&wasm_encoder::CustomSection {
        name: "padding".into(),
        data: vec![0u8; MAX_COMPONENT_BYTES].into(),
    });
    let err = load(&engine(), component.finish()).await.unwrap_err();
    assert!(matches!(err, LoadError::TooLarge { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&MAX_COMPONENT_BYTES.to_string()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compilations_run_a_few_at_a_time() {
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let bytes = std::fs::read(adversary_dir().join("adversary.wasm")).unwrap();
    let mut loads = tokio::task::JoinSet::new();
    for n in 0..6 {
        let (engine, mut bytes) = (engine.clone(), bytes.clone());
        // A different custom section each: six distinct components.
        let mut extra = wasm_encoder::Component::new();
        extra.section(&wasm_encoder::CustomSection {
            name: format!("copy-{n}").into(),
            data: b"x".as_slice().into(),
        });
        bytes.extend_from_slice(&extra.finish()[8..]);
        loads.spawn(async move {
            engine
                .load_bytes(
                    Manifest::new("adversary"),
                    std::env::temp_dir().join("plugin.toml"),
                    "adversary.wasm".into(),
                    bytes,
                )
                .await
                .map(|_| ())
        });
    }
    while let Some(loaded) = loads.join_next().await {
        loaded.unwrap().unwrap();
    }
    let peak = engine.compiles_peak();
    assert!(
        (1..=MAX_CONCURRENT_COMPILES).contains(&peak),
        "{peak} compilations ran at once"
    );
}
