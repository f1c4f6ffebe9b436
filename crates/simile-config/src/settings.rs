use std::path::{Path, PathBuf};

use crate::{ConfigError, EnvSnapshot};

/// Where, under the simile home, `cargo xtask models fetch-ort` installs the ONNX Runtime library
/// and where [`Settings`] finds it when no variable names one.
pub const ORT_LIB_DIR: &str = "lib";

/// The ONNX Runtime library in `dir` (`libonnxruntime.so*`, `libonnxruntime*.dylib`,
/// `onnxruntime.dll`); the highest name (version) when there are several.
pub fn find_ort_library(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let lib = (name.starts_with("libonnxruntime.so")
                || (name.starts_with("libonnxruntime") && name.ends_with(".dylib"))
                || name == "onnxruntime.dll")
                && !name.contains("providers");
            lib && !name.ends_with(".partial") && p.is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// simile's own (non-brain) settings.
///
/// | field | variable | default |
/// |---|---|---|
/// | `home` | `SIMILE_HOME` | `~/.simile` |
/// | `models_dir` | `SIMILE_MODELS_DIR` | none |
/// | `model_cache_dir` | `SIMILE_MODEL_CACHE` | `<home>/models` |
/// | `ort_dylib_path` | `SIMILE_ORT_DYLIB_PATH`, else `ORT_DYLIB_PATH` | the library in `<home>/lib` (see [`ORT_LIB_DIR`]), else none |
/// | `offline` | `SIMILE_OFFLINE`, else `HF_HUB_OFFLINE` (`1`/`true`/`yes`) | false |
/// | `log_filter` | `SIMILE_LOG` (`tracing` filter directives, e.g. `simile=debug`) | none |
///
/// Blank variables count as unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The data directory (datasets, indexes).
    pub home: PathBuf,
    /// A directory of ready model files to use instead of the cache.
    pub models_dir: Option<PathBuf>,
    /// Where downloaded/exported models are cached.
    pub model_cache_dir: PathBuf,
    /// The ONNX Runtime shared library to load.
    pub ort_dylib_path: Option<PathBuf>,
    /// Never download models (use only `models_dir` and the cache).
    pub offline: bool,
    /// The log filter directives a binary installs (`SIMILE_LOG`); libraries only emit events.
    pub log_filter: Option<String>,
    /// Whether `model_cache_dir` was set explicitly (else it follows `home`).
    model_cache_explicit: bool,
}

impl Settings {
    /// Loads the settings from the process environment.
    pub fn load() -> Result<Settings, ConfigError> {
        Settings::load_from(&EnvSnapshot::from_process())
    }

    /// Loads the settings with `env` standing in for the process environment.
    pub fn load_from(env: &EnvSnapshot) -> Result<Settings, ConfigError> {
        let path = |var: &str| env.get_nonempty(var).map(PathBuf::from);
        let home = match path("SIMILE_HOME") {
            Some(home) => home,
            None => env
                .home_dir()
                .map(|h| h.join(".simile"))
                .ok_or(ConfigError::NoHomeDir { var: "SIMILE_HOME" })?,
        };
        let cache = path("SIMILE_MODEL_CACHE");
        Ok(Settings {
            models_dir: path("SIMILE_MODELS_DIR"),
            model_cache_explicit: cache.is_some(),
            model_cache_dir: cache.unwrap_or_else(|| home.join("models")),
            ort_dylib_path: path("SIMILE_ORT_DYLIB_PATH")
                .or_else(|| path("ORT_DYLIB_PATH"))
                .or_else(|| find_ort_library(&home.join(ORT_LIB_DIR))),
            offline: env
                .get_nonempty("SIMILE_OFFLINE")
                .or_else(|| env.get_nonempty("HF_HUB_OFFLINE"))
                .is_some_and(|v| {
                    matches!(
                        v.trim().to_ascii_lowercase().as_str(),
                        "1" | "true" | "yes" | "on"
                    )
                }),
            log_filter: env.get_nonempty("SIMILE_LOG").map(str::to_string),
            home,
        })
    }

    /// Settings rooted at `home`, ignoring the environment: no models dir, the model cache in
    /// `<home>/models`, no ONNX Runtime path.
    pub fn for_home(home: impl Into<PathBuf>) -> Settings {
        let home = home.into();
        Settings {
            models_dir: None,
            model_cache_dir: home.join("models"),
            ort_dylib_path: None,
            offline: false,
            log_filter: None,
            model_cache_explicit: false,
            home,
        }
    }

    /// These settings with another home (a `--home` flag beating `SIMILE_HOME`). The model cache
    /// follows the new home unless `SIMILE_MODEL_CACHE` set it. An ONNX Runtime library already
    /// found (by variable, or in the default home's `lib/`) is kept; else the new home's `lib/`
    /// is searched.
    #[must_use]
    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Settings {
        self.home = home.into();
        if !self.model_cache_explicit {
            self.model_cache_dir = self.home.join("models");
        }
        if self.ort_dylib_path.is_none() {
            self.ort_dylib_path = find_ort_library(&self.home.join(ORT_LIB_DIR));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_home() {
        let s = Settings::load_from(&EnvSnapshot::new().home("/u")).unwrap();
        assert_eq!(s.home, PathBuf::from("/u/.simile"));
        assert_eq!(s.model_cache_dir, PathBuf::from("/u/.simile/models"));
        assert_eq!(s.models_dir, None);
        assert_eq!(s.ort_dylib_path, None);
        assert_eq!(s, Settings::for_home("/u/.simile"));
    }

    #[test]
    fn offline_flag() {
        let env = EnvSnapshot::new().home("/u");
        assert!(!Settings::load_from(&env).unwrap().offline);
        assert!(
            Settings::load_from(&env.clone().set("HF_HUB_OFFLINE", "1"))
                .unwrap()
                .offline
        );
        assert!(
            !Settings::load_from(
                &env.clone()
                    .set("SIMILE_OFFLINE", "no")
                    .set("HF_HUB_OFFLINE", "1")
            )
            .unwrap()
            .offline
        );
        assert!(
            Settings::load_from(&env.set("SIMILE_OFFLINE", "TRUE"))
                .unwrap()
                .offline
        );
    }

    #[test]
    fn log_filter_from_simile_log() {
        let env = EnvSnapshot::new().home("/u");
        assert_eq!(Settings::load_from(&env).unwrap().log_filter, None);
        assert_eq!(
            Settings::load_from(&env.clone().set("SIMILE_LOG", " "))
                .unwrap()
                .log_filter,
            None
        );
        assert_eq!(
            Settings::load_from(&env.set("SIMILE_LOG", "simile=debug"))
                .unwrap()
                .log_filter
                .as_deref(),
            Some("simile=debug")
        );
    }

    #[test]
    fn no_home_is_an_error() {
        let err = Settings::load_from(&EnvSnapshot::new()).unwrap_err();
        assert!(matches!(err, ConfigError::NoHomeDir { var: "SIMILE_HOME" }));
        let s = Settings::load_from(&EnvSnapshot::new().set("SIMILE_HOME", "/data")).unwrap();
        assert_eq!(s.home, PathBuf::from("/data"));
    }

    #[test]
    fn with_home_moves_the_default_cache_only() {
        let env = EnvSnapshot::new().home("/u");
        let s = Settings::load_from(&env).unwrap().with_home("/cli");
        assert_eq!(s.model_cache_dir, PathBuf::from("/cli/models"));
        let env = env.set("SIMILE_MODEL_CACHE", "/cache");
        let s = Settings::load_from(&env).unwrap().with_home("/cli");
        assert_eq!(s.home, PathBuf::from("/cli"));
        assert_eq!(s.model_cache_dir, PathBuf::from("/cache"));
    }

    #[test]
    fn ort_library_found_in_the_home_lib_dir() {
        let home = tempfile::tempdir().unwrap();
        let env = EnvSnapshot::new().set("SIMILE_HOME", home.path().to_str().unwrap());
        assert_eq!(Settings::load_from(&env).unwrap().ort_dylib_path, None);
        let lib = home.path().join(ORT_LIB_DIR);
        std::fs::create_dir_all(&lib).unwrap();
        for name in [
            "libonnxruntime.so.1.30.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime.so.1.31.1.partial",
            "libonnxruntime_providers_shared.so",
            "notes.txt",
        ] {
            std::fs::write(lib.join(name), b"x").unwrap();
        }
        let want = Some(lib.join("libonnxruntime.so.1.31.1"));
        assert_eq!(Settings::load_from(&env).unwrap().ort_dylib_path, want);
        // A variable still wins; another --home keeps the library found.
        let named = env
            .clone()
            .set("SIMILE_ORT_DYLIB_PATH", "/x/libonnxruntime.so");
        assert_eq!(
            Settings::load_from(&named).unwrap().ort_dylib_path,
            Some(PathBuf::from("/x/libonnxruntime.so"))
        );
        let moved = Settings::load_from(&env).unwrap().with_home("/elsewhere");
        assert_eq!(moved.ort_dylib_path, want);
        // A --home of its own with a lib/ is searched when nothing was found before.
        let plain = Settings::load_from(&EnvSnapshot::new().set("SIMILE_HOME", "/nowhere"))
            .unwrap()
            .with_home(home.path());
        assert_eq!(plain.ort_dylib_path, want);
    }

    #[test]
    fn ort_path_prefers_simile_var() {
        let env = EnvSnapshot::new()
            .home("/u")
            .set("ORT_DYLIB_PATH", "/a/libonnxruntime.so")
            .set("SIMILE_MODELS_DIR", "/m");
        let s = Settings::load_from(&env).unwrap();
        assert_eq!(
            s.ort_dylib_path,
            Some(PathBuf::from("/a/libonnxruntime.so"))
        );
        assert_eq!(s.models_dir, Some(PathBuf::from("/m")));
        let s = Settings::load_from(&env.set("SIMILE_ORT_DYLIB_PATH", "/b/libort.so")).unwrap();
        assert_eq!(s.ort_dylib_path, Some(PathBuf::from("/b/libort.so")));
        let s = Settings::load_from(
            &EnvSnapshot::new()
                .home("/u")
                .set("SIMILE_ORT_DYLIB_PATH", " "),
        )
        .unwrap();
        assert_eq!(s.ort_dylib_path, None);
    }
}
