//! Fuzz harnesses (`simile-fuzz`): `brain_config.json` files and environments mutated from valid
//! ones. The property: never a panic, always `Ok` or a typed `ConfigError`; and the password
//! never shows in the error chain or in the config's `Debug`. Short pass by default;
//! `SIMILE_FUZZ_SECONDS=N` runs long (`cargo xtask fuzz`).
use std::cell::Cell;
use std::error::Error as _;

use serde_json::Value;
use simile_config::{BrainConfig, EnvSnapshot, Settings, DEFAULT_BACKEND_VARS, PARAM_PREFIXES};
use simile_fuzz::proptest::prelude::*;
use simile_fuzz::{check, json_from};

use crate::{env_with_file, MILVUS_FILE};

const PASSWORD: &str = "hunter2-fuzz";

/// Everything a user could see of a load's outcome: the error chain, or the config's `Debug`.
fn shown(r: &Result<BrainConfig, simile_config::ConfigError>) -> String {
    match r {
        Ok(c) => format!("{c:?}"),
        Err(e) => {
            let mut s = format!("{e} {e:?}");
            let mut src = e.source();
            while let Some(x) = src {
                s.push_str(&format!(" / {x}"));
                src = x.source();
            }
            s
        }
    }
}

#[test]
fn mutated_brain_config_files_load_or_are_typed_errors_and_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let seed: Value =
        serde_json::from_str(&MILVUS_FILE.replace("\"p\"", &format!("\"{PASSWORD}\""))).unwrap();
    let (oks, errs) = (Cell::new(0), Cell::new(0));
    check("brain_config.json", 256, json_from(seed), |text| {
        let env = env_with_file(dir.path(), &String::from_utf8_lossy(&text.0));
        let r = BrainConfig::load_from(&env);
        let count = if r.is_ok() { &oks } else { &errs };
        count.set(count.get() + 1);
        let t = String::from_utf8_lossy(&text.0);
        // Only where the password is still under its key, once (a splice may move it elsewhere).
        if t.matches(PASSWORD).count() == 1 && t.contains(&format!("\"password\":\"{PASSWORD}\"")) {
            let seen = shown(&r);
            prop_assert!(!seen.contains(PASSWORD), "password shown: {}", seen);
        }
        Ok(())
    });
    assert!(oks.get() > 0 && errs.get() > 0, "both outcomes are reached");
}

/// A variable name: a known prefix and a suffix, or a known exact name.
fn var_name() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(
        PARAM_PREFIXES
            .iter()
            .chain(DEFAULT_BACKEND_VARS)
            .chain(&[
                "SIMILE_HOME",
                "SIMILE_MODELS_DIR",
                "SIMILE_MODEL_CACHE",
                "SIMILE_ORT_DYLIB_PATH",
                "",
            ])
            .copied()
            .collect::<Vec<_>>(),
    );
    let suffix = prop_oneof![
        Just(String::new()),
        Just("MILVUS_PASSWORD".to_string()),
        Just("MILVUS_URI".to_string()),
        Just("SKLEARN_METRIC".to_string()),
        Just("MY_BACKEND_X".to_string()),
        "[A-Za-z0-9_]{0,14}",
    ];
    (prefix, suffix).prop_map(|(p, s)| format!("{p}{s}"))
}

fn var_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("milvus".to_string()),
        Just("  ".to_string()),
        Just("18446744073709551616".to_string()),
        Just("NaN".to_string()),
        Just("{\"a\": 1}".to_string()),
        Just("../../../etc".to_string()),
        "\\PC{0,16}",
    ]
}

#[test]
fn mutated_environments_load_or_are_typed_errors_and_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let vars = prop::collection::vec((var_name(), var_value()), 0..8);
    let loaded = Cell::new(0);
    check("environment", 256, vars, |vars| {
        let mut env = env_with_file(dir.path(), MILVUS_FILE);
        let mut secret = false;
        for (k, v) in &vars {
            env = env.set(k.as_str(), v.as_str());
        }
        // A password variable with a recognisable value, set last so it wins.
        if vars.len() % 2 == 0 {
            env = env.set("SIMILE_SIMILARITY_MILVUS_PASSWORD", PASSWORD);
            secret = true;
        }
        let r = BrainConfig::load_from(&env);
        if r.is_ok() {
            loaded.set(loaded.get() + 1);
        }
        if secret && !vars.iter().any(|(_, v)| v.contains(PASSWORD)) {
            let seen = shown(&r);
            prop_assert!(!seen.contains(PASSWORD), "password shown: {}", seen);
        }
        // Settings from the same environment: Ok or a typed error, never a panic.
        if let Err(e) = Settings::load_from(&env) {
            prop_assert!(!e.to_string().is_empty());
        }
        Ok(())
    });
    assert!(loaded.get() > 0, "some environments load");
}

#[test]
fn an_empty_environment_loads_the_defaults() {
    let c = BrainConfig::load_from(&EnvSnapshot::new()).unwrap();
    assert_eq!(c.default_similarity_backend, "sklearn");
}
