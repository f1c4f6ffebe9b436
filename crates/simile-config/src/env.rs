use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A snapshot of environment variables, plus the home directory.
///
/// [`EnvSnapshot::from_process`] captures the real environment; tests build one by hand so they
/// never depend on (or modify) the process environment:
///
/// ```
/// use simile_config::{BrainConfig, EnvSnapshot};
/// let env = EnvSnapshot::new()
///     .home("/nonexistent")
///     .set("SIMILE_SIMILARITY_MILVUS_PASSWORD", "123");
/// let config = BrainConfig::load_from(&env).unwrap();
/// assert_eq!(config.similarity_backends["milvus"]["password"], "123");
/// ```
///
/// `Debug` prints variable names only, never values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvSnapshot {
    vars: BTreeMap<String, String>,
    home: Option<PathBuf>,
}

impl EnvSnapshot {
    /// An empty environment with no home directory.
    pub fn new() -> Self {
        EnvSnapshot::default()
    }

    /// The current process environment (variables whose name or value is not UTF-8 are skipped)
    /// and the user's home directory.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        EnvSnapshot {
            vars,
            home: dirs::home_dir(),
        }
    }

    /// Sets a variable.
    #[must_use]
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Removes a variable.
    #[must_use]
    pub fn unset(mut self, name: &str) -> Self {
        self.vars.remove(name);
        self
    }

    /// Sets the home directory (otherwise `$HOME` of the snapshot).
    #[must_use]
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of a variable if set and not blank.
    pub(crate) fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// The home directory: the one given to [`EnvSnapshot::home`] or found by
    /// [`EnvSnapshot::from_process`], else `$HOME`.
    pub fn home_dir(&self) -> Option<PathBuf> {
        self.home
            .clone()
            .or_else(|| self.get_nonempty("HOME").map(PathBuf::from))
    }

    /// Variables whose name starts with `prefix`, in name order.
    pub(crate) fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.vars
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EnvSnapshot {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        EnvSnapshot {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            home: None,
        }
    }
}

impl fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSnapshot")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("home", &self.home)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_scan_and_debug() {
        let env: EnvSnapshot = [("A_X", "1"), ("A_Y", "secret"), ("B", "2"), ("A", "3")]
            .into_iter()
            .collect();
        let got: Vec<_> = env.with_prefix("A_").collect();
        assert_eq!(got, vec![("A_X", "1"), ("A_Y", "secret")]);
        let dbg = format!("{env:?}");
        assert!(dbg.contains("A_Y"));
        assert!(!dbg.contains("secret"));
    }

    #[test]
    fn home_falls_back_to_home_var() {
        let env = EnvSnapshot::new().set("HOME", "/h");
        assert_eq!(env.home_dir(), Some(PathBuf::from("/h")));
        let env = env.home("/other");
        assert_eq!(env.home_dir(), Some(PathBuf::from("/other")));
        assert_eq!(EnvSnapshot::new().home_dir(), None);
    }
}
