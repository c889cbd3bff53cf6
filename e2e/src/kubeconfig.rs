//! Kubeconfig files for the admin and for the agent under test.

use std::path::Path;

use base64::Engine as _;

use crate::error::{Result, io};

/// Writes a self-contained kubeconfig (CA embedded, bearer token) so the file
/// still works when copied elsewhere or read from another working directory.
pub fn write(path: &Path, server: &str, ca_pem: &[u8], user: &str, token: &str) -> Result<()> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: stsmend-e2e
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: {user}@stsmend-e2e
  context:
    cluster: stsmend-e2e
    user: {user}
    namespace: default
current-context: {user}@stsmend-e2e
"
    );
    std::fs::write(path, text).map_err(io(format!("write {}", path.display())))?;
    Ok(())
}

/// A client for a kubeconfig file, the same way the agent builds its own.
pub async fn client(path: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}
