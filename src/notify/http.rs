//! The one place notifications go over the wire: a small HTTP/1 client
//! (hyper and rustls, as kube already uses them) with a bearer token, extra
//! CA certificates and a timeout. A failed delivery is an error value for
//! the caller to log and report; it never ends a run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{url}: {message}")]
    Setup { url: String, message: String },
    #[error("{url}: {message}")]
    Request { url: String, message: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: no answer within {seconds}s")]
    Timeout { url: String, seconds: u64 },
}

/// A server the agent posts to: Alertmanager or a Pushgateway.
pub struct Endpoint {
    base: String,
    token: Option<String>,
    timeout: Duration,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Endpoint {
    /// `base` is the server's URL (validated with the config); the token
    /// and CA files are read now.
    pub fn new(
        base: &str,
        token_file: Option<&Path>,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, SendError> {
        let setup = |message: String| SendError::Setup {
            url: base.to_string(),
            message,
        };
        let token = token_file
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|t| t.trim().to_string())
                    .map_err(|e| setup(format!("reading the token {}: {e}", p.display())))
            })
            .transpose()?;
        let mut roots = rustls::RootCertStore::empty();
        if base.starts_with("https:") {
            // The system's CAs (distroless ships them); unreadable ones are
            // skipped, as every TLS client does.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| setup(format!("reading the CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(setup(format!(
                    "the CA file {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| setup(format!("CA file {}: {e}", path.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            timeout,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Sends `body` to `<base><path>`; any 2xx is success.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(), SendError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::CONTENT_TYPE, content_type)
            .header(
                header::USER_AGENT,
                concat!("stsmend/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Request {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| SendError::Request {
                    url: url.clone(),
                    message: error_chain(&e),
                })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                let text = String::from_utf8_lossy(&body);
                Err(SendError::Status {
                    url: url.clone(),
                    status: status.as_u16(),
                    body: text.trim().chars().take(300).collect(),
                })
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Timeout {
                    url: url.clone(),
                    seconds: self.timeout.as_secs(),
                })
            })
    }
}

/// Sends a run's alerts in one `POST /api/v2/alerts`; what happened, for the
/// report.
pub async fn deliver_alerts(
    config: &super::AlertmanagerConfig,
    postings: &[super::alerts::Posting],
) -> super::Delivery {
    let firing = postings.iter().filter(|p| p.firing).count();
    let mut delivery = super::Delivery {
        url: config.url.clone(),
        firing,
        resolved: postings.len() - firing,
        delivered: true,
        error: None,
    };
    if postings.is_empty() {
        return delivery;
    }
    let sent = async {
        let body = super::alerts::body(postings).map_err(|e| SendError::Request {
            url: config.url.clone(),
            message: e.to_string(),
        })?;
        Endpoint::new(
            &config.url,
            config.bearer_token_file.as_deref(),
            config.ca_file.as_deref(),
            Duration::from_secs(config.timeout.as_secs()),
        )?
        .send(Method::POST, "/api/v2/alerts", "application/json", body)
        .await
    }
    .await;
    if let Err(e) = sent {
        delivery.delivered = false;
        delivery.error = Some(e.to_string());
    }
    delivery
}

/// Pushes the run's figures (replacing the group `job`/`instance`) and,
/// after a successful run, its success time (the group with
/// `outcome="success"`).
pub async fn push_metrics(
    config: &super::PushgatewayConfig,
    instance: &str,
    run: String,
    success: Option<String>,
) -> Result<(), SendError> {
    const TEXT: &str = "text/plain; version=0.0.4";
    let endpoint = Endpoint::new(
        &config.url,
        config.bearer_token_file.as_deref(),
        config.ca_file.as_deref(),
        Duration::from_secs(config.timeout.as_secs()),
    )?;
    let group = format!("/metrics/job/{}/instance/{instance}", config.job);
    endpoint
        .send(Method::PUT, &group, TEXT, run.into_bytes())
        .await?;
    if let Some(text) = success {
        endpoint
            .send(
                Method::PUT,
                &format!("{group}/outcome/success"),
                TEXT,
                text.into_bytes(),
            )
            .await?;
    }
    Ok(())
}

/// An error and its sources on one line: hyper's own message alone says
/// only "client error (Connect)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server on loopback: answers `status` and hands back
    /// the request it read.
    async fn server(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if rest.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
            );
            sock.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf).to_string()
        });
        (url, task)
    }

    #[tokio::test]
    async fn posts_with_the_token_and_reports_a_refusal() {
        let dir = std::env::temp_dir().join(format!("stsmend-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();

        let (url, seen) = server(200).await;
        let e = Endpoint::new(&url, Some(&token), None, Duration::from_secs(5)).unwrap();
        e.send(
            Method::POST,
            "/api/v2/alerts",
            "application/json",
            b"[]".to_vec(),
        )
        .await
        .unwrap();
        let req = seen.await.unwrap();
        assert!(req.starts_with("POST /api/v2/alerts HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("authorization: Bearer s3cret\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n[]"), "{req}");

        let (url, _) = server(400).await;
        let e = Endpoint::new(&url, None, None, Duration::from_secs(5)).unwrap();
        let err = e
            .send(Method::PUT, "/metrics/job/x", "text/plain", Vec::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP 400: nope"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_naming_it() {
        // A port nobody listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let e = Endpoint::new(&url, None, None, Duration::from_secs(5)).unwrap();
        let err = e
            .send(
                Method::POST,
                "/api/v2/alerts",
                "application/json",
                b"[]".to_vec(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&url), "{err}");
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }

    /// A CA and a server certificate for 127.0.0.1 it signed, made by the
    /// openssl command line: (dir with ca.pem, server.pem, server.key).
    fn certificates(dir: &Path) -> bool {
        let sh = |script: &str| {
            std::process::Command::new("sh")
                .arg("-ec")
                .arg(script)
                .current_dir(dir)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
              -keyout ca.key -out ca.pem -days 2 -subj /CN=stsmend-test-ca 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
              -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
              -out server.pem -days 2 -extfile ext 2>/dev/null")
    }

    /// An HTTPS server on loopback (rustls on a thread) answering 200 once
    /// per connection, `connections` times.
    fn tls_server(dir: &Path, connections: usize) -> String {
        use std::io::{Read as _, Write as _};
        let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for sock in listener.incoming().take(connections) {
                let Ok(sock) = sock else { continue };
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                // A refused handshake ends here: the client's error is
                // what the test checks.
                while let Ok(n) = tls.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let _ = tls.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        let _ = tls.flush();
                        break;
                    }
                }
            }
        });
        url
    }

    #[tokio::test]
    async fn https_trusts_the_ca_file_and_only_what_it_trusts() {
        let dir = std::env::temp_dir().join(format!("stsmend-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            certificates(&dir),
            "the openssl command line makes the test certificates"
        );
        let url = tls_server(&dir, 2);
        let trusted = Endpoint::new(
            &url,
            None,
            Some(&dir.join("ca.pem")),
            Duration::from_secs(5),
        )
        .unwrap();
        trusted
            .send(
                Method::POST,
                "/api/v2/alerts",
                "application/json",
                b"[]".to_vec(),
            )
            .await
            .unwrap();
        // Without the CA file, the server's certificate is not trusted.
        let err = Endpoint::new(&url, None, None, Duration::from_secs(5))
            .unwrap()
            .send(
                Method::POST,
                "/api/v2/alerts",
                "application/json",
                b"[]".to_vec(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_token_or_ca_file_is_a_setup_error() {
        let err = Endpoint::new(
            "https://am:9093",
            Some(Path::new("/nonexistent/token")),
            None,
            Duration::from_secs(1),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("reading the token /nonexistent/token"),
            "{err}"
        );
        let err = Endpoint::new(
            "https://am:9093",
            None,
            Some(Path::new("/nonexistent/ca.pem")),
            Duration::from_secs(1),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("CA file /nonexistent/ca.pem"), "{err}");
    }
}
