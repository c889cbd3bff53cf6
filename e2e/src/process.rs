//! Child processes of the control plane: each in its own process group, its
//! output appended to a log file, killed with its group when dropped.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io};

/// How a component is launched; kept so it can be started again after a stop.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub log: PathBuf,
}

#[derive(Debug)]
pub(crate) struct Process {
    pub launch: Launch,
    child: Option<Child>,
}

impl Process {
    #[allow(unsafe_code)] // prctl in pre_exec: see the SAFETY note below
    pub fn spawn(launch: Launch) -> Result<Self> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(io(format!("open {}", launch.log.display())))?;
        let _ = writeln!(
            log,
            "==== stsmend-e2e: starting {} at {}\n==== {} {}",
            launch.name,
            jiff::Timestamp::now(),
            launch.program.display(),
            launch.args.join(" ")
        );
        let err = log.try_clone().map_err(io("clone log handle"))?;
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Own group, so a stop reaches anything the component forks.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        // It makes the kernel kill the component when the test process dies
        // without running destructors (SIGKILL, nextest timeout), so an
        // orphaned API server never keeps eating the machine's two cores.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io(format!(
            "spawn {} ({})",
            launch.name,
            launch.program.display()
        )))?;
        tracing::debug!(component = launch.name, pid = child.id(), "started");
        Ok(Self {
            launch,
            child: Some(child),
        })
    }

    /// `Err` with the tail of the log when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(self.exited("stopped".into()));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(self.exited(status.to_string()))
            }
            Err(e) => Err(self.exited(format!("wait failed: {e}"))),
        }
    }

    fn exited(&self, status: String) -> Error {
        Error::ComponentExited {
            component: self.launch.name.to_string(),
            status,
            log: self.launch.log.clone(),
            tail: tail(&self.launch.log, 25),
        }
    }

    /// SIGTERM to the group, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(&child, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.note("stopped");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal_group(&child, libc::SIGKILL);
        let _ = child.wait();
        self.note("killed after the stop grace period");
    }

    /// Synchronous kill for `Drop`, where nothing can be awaited.
    pub fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
            self.note("killed");
        }
    }

    fn note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.launch.log) {
            let _ = writeln!(
                f,
                "==== stsmend-e2e: {} {what} at {}",
                self.launch.name,
                jiff::Timestamp::now()
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_now();
    }
}

#[allow(unsafe_code)] // kill(2) of the group: see the SAFETY note below
fn signal_group(child: &Child, sig: i32) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: plain syscall. The group id equals the child's pid (process_group(0))
    // and the child is not yet reaped, so the id cannot have been reused.
    unsafe {
        libc::kill(-pid, sig);
    }
}

/// The last `n` lines of a log, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
