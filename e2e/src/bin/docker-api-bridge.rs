//! `docker-api-bridge --listen SOCK --upstream unix:///var/run/docker.sock --version 1.41`
//!
//! Serves the Docker API on SOCK for clients that ask for a newer version than
//! the engine has (see `stsmend_e2e::docker_api`). scripts/engine.sh starts it
//! when needed and points DOCKER_HOST at it.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use stsmend_e2e::docker_api::{ApiVersion, serve};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut listen = None;
    let mut upstream = PathBuf::from("/var/run/docker.sock");
    let mut version = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(PathBuf::from(value()?)),
            "--upstream" => {
                let v = value()?;
                upstream = PathBuf::from(v.strip_prefix("unix://").unwrap_or(&v));
            }
            "--version" => {
                version = Some(value()?.parse::<ApiVersion>().map_err(anyhow::Error::msg)?)
            }
            other => bail!("unknown argument {other:?} (--listen, --upstream, --version)"),
        }
    }
    let listen = listen.context("--listen SOCKET is required")?;
    let version =
        version.context("--version MAJOR.MINOR (the engine's API version) is required")?;
    tracing::info!(listen = %listen.display(), upstream = %upstream.display(), %version, "bridging");
    serve(&listen, &upstream, version)
        .await
        .with_context(|| format!("serve on {}", listen.display()))
}
