//! The one retry policy for API requests: kube's own retry layer is off
//! (see [`super::build_client`]), so every request is retried here or not
//! at all, and an eviction's 429 (a PodDisruptionBudget's answer) reaches
//! the agent at once.

use std::time::Duration;

use crate::error::{Error, Result};

/// Attempts for a request that failed in a way that may pass on its own (the
/// API server restarting, overloaded, or a dropped connection). Every write
/// is conditional, so a retry of a write that did land ends as a conflict,
/// never as a second change.
pub const ATTEMPTS: u32 = 3;

/// The pause before the second attempt; the third waits twice as long.
pub const WRITE_DELAY: Duration = Duration::from_secs(1);

/// Reads pause less: they are many, and a read repeated changes nothing.
pub const READ_DELAY: Duration = Duration::from_millis(500);

/// Whether an error may pass on its own: the server unreachable, timing
/// out, overloaded or failing inside. A 4xx other than 429 will not.
pub fn transient(e: &Error) -> bool {
    match e {
        Error::Api { source, .. } => match source.as_ref() {
            kube::Error::Api(s) => s.code == 429 || s.code >= 500,
            kube::Error::Auth(_) | kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => {
                false
            }
            _ => true,
        },
        _ => false,
    }
}

pub async fn retry<T, F, Fut>(delay: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tracing::warn!(error = %e, attempt, "transient API error; retrying");
                tokio::time::sleep(delay * attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_side_and_connection_failures_are_retried() {
        let api = |code: u16| {
            Error::api(
                "x",
                kube::Error::Api(Box::new(
                    kube::core::Status::failure("m", "r").with_code(code),
                )),
            )
        };
        assert!(transient(&api(503)));
        assert!(transient(&api(429)));
        assert!(!transient(&api(403)));
        assert!(!transient(&api(409)));
        assert!(!transient(&Error::invalid("x", "y", "z")));
    }

    #[tokio::test]
    async fn retries_transient_errors_then_gives_up() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<()> = retry(Duration::ZERO, || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(Error::api(
                "x",
                kube::Error::Api(Box::new(
                    kube::core::Status::failure("m", "r").with_code(500),
                )),
            ))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), ATTEMPTS);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<()> = retry(Duration::ZERO, || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(Error::invalid("x", "y", "z"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
