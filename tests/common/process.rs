//! External servers a test starts (nginx, moto, a GCS emulator): finding
//! the program, skipping without it outside CI, a free port, waiting until
//! the server answers, and killing it when the test ends.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// `program` from a folder on `PATH`, else from one of `also_in`.
pub fn find_program(program: &str, also_in: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(also_in.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `program` (see [`find_program`]), or `None` after saying that `test`
/// was skipped, where it is missing.
///
/// # Panics
///
/// Where it is missing and `CI=true`: CI runs every test.
pub fn program_or_skip(program: &str, also_in: &[&str], test: &str) -> Option<PathBuf> {
    match find_program(program, also_in) {
        Some(binary) => Some(binary),
        None if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{program} is not installed, and CI=true requires it (see .ci/run)")
        }
        None => {
            eprintln!("skipped {test}: {program} is not installed (see .ci/run)");
            None
        }
    }
}

/// A free loopback port (free when returned; the server binds it just
/// after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A server a test started, to listen on a loopback port; killed and
/// reaped on drop, also when the test fails.
pub struct ServerProcess {
    name: String,
    port: u16,
    child: Child,
}

impl ServerProcess {
    /// Spawns `command`, which is to listen on `port`; `name` names it in
    /// messages.
    ///
    /// # Panics
    ///
    /// If it cannot be spawned.
    pub fn spawn(name: &str, port: u16, command: &mut Command) -> ServerProcess {
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        ServerProcess {
            name: name.to_owned(),
            port,
            child,
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process, for its piped output.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits until the port takes connections and then `answers()` holds,
    /// trying every `poll`.
    ///
    /// # Errors
    ///
    /// The exit status, if the process ends first.
    ///
    /// # Panics
    ///
    /// If it does not answer within `timeout`.
    pub fn wait_until_ready(
        &mut self,
        timeout: Duration,
        poll: Duration,
        mut answers: impl FnMut() -> bool,
    ) -> Result<(), ExitStatus> {
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && answers() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(status);
            }
            assert!(
                started.elapsed() < timeout,
                "{} did not answer on port {} within {timeout:?}",
                self.name,
                self.port
            );
            thread::sleep(poll);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
