//! The one layer that talks to the Kubernetes API. Everything else works on
//! plain objects.

pub mod act;
pub mod metrics;
pub mod preflight;
pub mod read;
pub mod retry;
pub mod undo;
pub mod write;

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// How to reach the cluster: a kubeconfig file and context, or (with neither
/// given) the usual inference: `$KUBECONFIG`, `~/.kube/config`, then the
/// in-cluster service account.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

impl Target {
    /// A client whose requests are counted in `counter`.
    pub async fn client(&self, counter: &metrics::Counter) -> Result<(kube::Client, String)> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let (config, label) = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|e| Error::kubeconfig(path.display().to_string(), e))?;
                let label = self
                    .context
                    .clone()
                    .or_else(|| kc.current_context.clone())
                    .unwrap_or_default();
                let config = kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| Error::kubeconfig(path.display().to_string(), e))?;
                (config, label)
            }
            None if self.context.is_some() => {
                let config = kube::Config::from_kubeconfig(&options).await.map_err(|e| {
                    Error::kubeconfig(
                        format!("context {}", self.context.as_deref().unwrap_or_default()),
                        e,
                    )
                })?;
                (config, self.context.clone().unwrap_or_default())
            }
            None => {
                let config = kube::Config::infer().await.map_err(|e| {
                    Error::kubeconfig("none in $KUBECONFIG, ~/.kube/config or the pod", e)
                })?;
                (config, "inferred".to_string())
            }
        };
        let label = format!("cluster {} ({label})", config.cluster_url);
        Ok((build_client(config, counter)?, label))
    }
}

/// The client every command uses, from a resolved config: the one place its
/// timeouts and layers are set, so tests build the very same client.
pub fn build_client(mut config: kube::Config, counter: &metrics::Counter) -> Result<kube::Client> {
    // A CronJob run must end: a hung server is a failed run (exit 3)
    // that the next run retries, not a Job that hangs until its
    // deadline. A minute covers the largest LIST page.
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    config.read_timeout = Some(std::time::Duration::from_secs(60));
    config.write_timeout = Some(std::time::Duration::from_secs(60));
    // One retry layer: the agent's own ([`retry`]), which knows that
    // an eviction's 429 is a PodDisruptionBudget's answer. kube's default
    // layer retries every 429 up to 15 times, honouring Retry-After, so a
    // refused eviction took minutes before the agent saw it.
    config.default_retry = false;
    let counting = counter.clone();
    Ok(kube::client::ClientBuilder::try_from(config)
        .map_err(|e| Error::kubeconfig("building the client", e))?
        .with_layer(&tower::util::MapRequestLayer::new(
            move |req: http::Request<kube::client::Body>| {
                counting.record(&req);
                req
            },
        ))
        .build())
}
