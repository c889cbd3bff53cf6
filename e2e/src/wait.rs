//! Polling with a deadline: the only way tests wait for cluster state, so a
//! slow machine makes a test slower, never flaky, and a timeout says what the
//! state was when it gave up.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often [`wait_until`] re-checks. Short enough that tests do not idle,
/// long enough not to load the API server of a 2-core machine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Calls `check` until it returns `Ok`, or fails with [`Error::Timeout`] after
/// `timeout` (scaled by [`scaled`]). `Err(state)` means "not yet" and describes the current state; the
/// last one is reported on timeout. Errors from the API are "not yet" too (an
/// API server being restarted is a normal part of chaos tests), so map them
/// into the string.
pub async fn wait_until<T, F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let what = what.into();
    let timeout = scaled(timeout);
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(last) => {
                if start.elapsed() >= timeout {
                    return Err(Error::Timeout {
                        what,
                        after: timeout,
                        last,
                    });
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Scales a timeout for slow or loaded machines: `STSMEND_E2E_TIMEOUT_SCALE=2`
/// doubles every timeout the harness and the scenarios use.
pub fn scaled(d: Duration) -> Duration {
    let factor = std::env::var("STSMEND_E2E_TIMEOUT_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| *f > 0.0)
        .unwrap_or(1.0);
    d.mul_f64(factor)
}

/// Waits until `ns/name` exists and has its token Secret. The
/// controller-manager creates both shortly after a namespace appears; a pod
/// created before then is rejected by the ServiceAccount admission plugin
/// ("No API token found"), which would make a StatefulSet fail for a reason
/// the scenario did not intend.
pub async fn service_account(client: &kube::Client, ns: &str, name: &str) -> Result<()> {
    let api: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(client.clone(), ns);
    wait_until(
        format!("ServiceAccount {ns}/{name} with its token"),
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                let sa = api
                    .get_opt(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("not created yet")?;
                if sa.secrets.is_some_and(|s| !s.is_empty()) {
                    Ok(())
                } else {
                    Err("no token Secret yet".to_string())
                }
            }
        },
    )
    .await
}
