//! Setting environment variables from tests.
//!
//! The environment is the process's, and the tests of one binary run in
//! parallel on threads of that process: a test that sets a variable holds
//! [`env_lock`] for as long as it needs the value, and sets it through
//! [`EnvVars`] so that it is restored even when the test fails.

use std::ffi::OsString;
use std::sync::{Mutex, MutexGuard};

/// The one lock of this test binary around changes to the environment.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Takes the environment lock; a test that panicked holding it does not
/// poison it for the others (its [`EnvVars`] restored the values).
pub fn env_lock() -> MutexGuard<'static, ()> {
    ENV_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets environment variables for its lifetime, restoring them on drop
/// (also when the test fails). Hold [`env_lock`] while it lives.
#[must_use = "the variables are restored when this is dropped"]
pub struct EnvVars {
    saved: Vec<(&'static str, Option<OsString>)>,
}

impl EnvVars {
    /// Sets each `(name, Some(value))` and removes each `(name, None)`.
    pub fn set(vars: &[(&'static str, Option<&str>)]) -> EnvVars {
        let saved = vars
            .iter()
            .map(|(name, _)| (*name, std::env::var_os(name)))
            .collect();
        for (name, value) in vars {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
        EnvVars { saved }
    }
}

impl Drop for EnvVars {
    fn drop(&mut self) {
        // In reverse, so a name given twice ends with its first saved value.
        for (name, value) in self.saved.iter().rev() {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}
