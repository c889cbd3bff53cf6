//! Running the real kubectl (the v1.20 one from the assets): scenarios are
//! written the way an operator changes a cluster, and fixtures are dumped
//! exactly as `kubectl get -o yaml` prints them.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result, io};

pub async fn run(
    kubectl: &Path,
    kubeconfig: &Path,
    cache_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    let mut cmd = tokio::process::Command::new(kubectl);
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        // Keeps kubectl's discovery cache out of the user's ~/.kube.
        .arg(format!("--cache-dir={}", cache_dir.display()))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(io(format!("spawn {}", kubectl.display())))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes())
            .await
            .map_err(io("write kubectl stdin"))?;
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(io("wait for kubectl"))?;
    if !out.status.success() {
        return Err(Error::Kubectl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
