//! Running the built `prefetch` binary as a user does: its exit code, its
//! output, what it leaves in a folder.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Generous: the slowest command here takes a few seconds.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The command, with no `RUST_LOG` from the environment and no stdin.
pub fn prefetch() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prefetch"));
    command.env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

/// Waits for `child`, killing it (and failing the test) after [`TIMEOUT`].
pub fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("prefetch ran for more than {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the command to the end, collecting its output, under [`TIMEOUT`].
pub fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prefetch");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).expect("read pipe");
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait(&mut child);
    Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}

/// What the command printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit code 1 with one `prefetch: …` line on stderr, and returns it.
#[track_caller]
pub fn assert_error(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(output));
    let text = stderr(output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {text}");
    assert!(lines[0].starts_with("prefetch: "), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    lines[0].to_owned()
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
