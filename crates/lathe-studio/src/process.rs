//! Worker processes: launching `lathe train` on a run folder, telling whether one is
//! still alive (after a studio restart too), and signalling it.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::error::{io, Result, StudioError};

/// How each worker started by this studio ended, by process id (filled by a thread
/// that waits on it, so no worker is left a zombie).
pub(crate) type Exits = Arc<Mutex<HashMap<u32, String>>>;

/// Starts `exe train` on `run` (`--resume` when `resume`), its output appended to
/// `worker.log`, in its own process group so that it outlives the studio; returns
/// its process id.
pub(crate) fn spawn(
    exe: &Path,
    run: &Path,
    resume: bool,
    env: &[(String, String)],
    exits: &Exits,
) -> Result<u32> {
    let log_path = run.join("worker.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let err = log.try_clone().map_err(io(&log_path))?;
    let mut command = Command::new(exe);
    command.arg("train");
    if resume {
        command.arg("--resume").arg(run);
    } else {
        command.arg("-Y").arg(run.join("cfg.yaml"));
    }
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(run)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| StudioError::Internal(format!("starting {}: {e}", exe.display())))?;
    let pid = child.id();
    let exits = exits.clone();
    std::thread::spawn(move || {
        let how = match child.wait() {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(0), _) => "worker exited".to_string(),
                (Some(code), _) => format!("worker exited with code {code}"),
                (None, Some(signal)) => format!("worker killed by signal {signal}"),
                _ => "worker exited".to_string(),
            },
            Err(e) => format!("worker lost: {e}"),
        };
        if let Ok(mut map) = exits.lock() {
            map.insert(pid, how);
        }
    });
    Ok(pid)
}

/// Whether process `pid` is alive, not a zombie, and a worker on `run` (a recycled
/// process id belongs to another program).
pub(crate) fn alive(pid: u32, run: &Path) -> bool {
    if !Path::new("/proc/self").exists() {
        // No procfs: a signal 0 only says that the process exists.
        return unsafe { libc::kill(pid as i32, 0) } == 0;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    if matches!(state, Some('Z' | 'X') | None) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let run = run.as_os_str().as_encoded_bytes();
    cmdline.windows(run.len()).any(|w| w == run)
}

/// Sends `signal` to the worker `pid`.
pub(crate) fn signal(pid: u32, signal: i32) {
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// The last line of `worker.log` that says what went wrong (`error: …`).
pub(crate) fn worker_error(run: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run.join("worker.log")).ok()?;
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:") || l.contains("panicked"))
        .map(|l| l.trim_start_matches("error:").trim().to_string())
}
