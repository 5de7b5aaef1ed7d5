//! SIGINT and SIGTERM during `prefetch get`: the temporary file is removed
//! (a `--continue` download's `FILE.part` is kept) before the process
//! exits 130 or 143 (128 + the signal), as a shell reports a command
//! killed by it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The file to remove if a signal ends the command.
static TEMP_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Starts the thread that handles the signals, once.
static HANDLER: Once = Once::new();

/// Removes `path` if SIGINT or SIGTERM arrives before
/// [`keep_on_interrupt`], then exits.
pub(crate) fn remove_on_interrupt(path: &Path) {
    *TEMP_FILE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(path.to_owned());
    exit_on_interrupt();
}

/// Exits 130 or 143 on SIGINT or SIGTERM, removing the file named by
/// [`remove_on_interrupt`] if any. Should the handler not start (no thread
/// can be made), signals keep their default action.
pub(crate) fn exit_on_interrupt() {
    HANDLER.call_once(|| {
        let mut signals = match Signals::new([SIGINT, SIGTERM]) {
            Ok(signals) => signals,
            Err(err) => {
                log::warn!("cannot handle interrupts: {err}");
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("prefetch-signals".to_owned())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let temp = TEMP_FILE
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .take();
                    if let Some(temp) = temp {
                        let _ = std::fs::remove_file(temp);
                    }
                    std::process::exit(128 + signal);
                }
            });
        if let Err(err) = spawned {
            log::warn!("cannot handle interrupts: {err}");
        }
    });
}

/// The temporary file is in place (renamed): nothing to remove any more.
pub(crate) fn keep_on_interrupt() {
    *TEMP_FILE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}
