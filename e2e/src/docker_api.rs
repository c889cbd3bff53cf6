//! A bridge between testcontainers and an older Docker engine.
//!
//! testcontainers (through bollard) sends every request as `/v1.52/...` and
//! never negotiates; Debian bookworm's Docker 20.10 serves at most API 1.41
//! and refuses anything newer. The calls the harness makes (create, start,
//! inspect, logs, exec, stop, remove) exist with the same shape in 1.41, so
//! the bridge rewrites only the version prefix of each request's path, down
//! to the engine's own version, and copies everything else byte for byte.
//!
//! Each request gets its own upstream connection (`Connection: close`), so the
//! bridge never has to find where one request's body ends and the next
//! request begins. Upgraded connections (exec and attach hijack the socket)
//! keep their `Connection: Upgrade` and are copied both ways until closed.

use std::path::Path;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

/// A request head larger than this is refused; Docker's are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// An API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl std::str::FromStr for ApiVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s
            .split_once('.')
            .ok_or_else(|| format!("API version {s:?} is not MAJOR.MINOR"))?;
        let n = |p: &str| {
            p.parse::<u32>()
                .map_err(|_| format!("API version {s:?} is not MAJOR.MINOR"))
        };
        Ok(Self(n(major)?, n(minor)?))
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Rewrites one request head (request line and headers, up to and including
/// the blank line): a path versioned above `max` is lowered to `max`, and a
/// request that does not upgrade the connection asks for `Connection: close`.
/// Returns `None` when the head is not an HTTP/1.x request.
pub fn rewrite_head(head: &str, max: ApiVersion) -> Option<String> {
    let (request_line, rest) = head.split_once("\r\n")?;
    let mut parts = request_line.splitn(3, ' ');
    let (method, target, proto) = (parts.next()?, parts.next()?, parts.next()?);
    if !proto.starts_with("HTTP/1.") {
        return None;
    }
    let target = lower_version(target, max);
    let upgrade = rest.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("upgrade"))
    });
    let mut out = format!("{method} {target} {proto}\r\n");
    for line in rest.split("\r\n").filter(|l| !l.is_empty()) {
        let is_connection = line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"));
        if is_connection && !upgrade {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    Some(out)
}

fn lower_version(target: &str, max: ApiVersion) -> String {
    let Some(after) = target.strip_prefix("/v") else {
        return target.to_string();
    };
    let (version, tail) = after.split_once('/').unwrap_or((after, ""));
    match version.parse::<ApiVersion>() {
        Ok(v) if v > max => format!("/v{max}/{tail}"),
        _ => target.to_string(),
    }
}

/// Serves the bridge on `listen` until the process ends.
pub async fn serve(listen: &Path, upstream: &Path, max: ApiVersion) -> std::io::Result<()> {
    let listener = UnixListener::bind(listen)?;
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.to_path_buf();
        tokio::spawn(async move {
            if let Err(e) = relay(client, &upstream, max).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

async fn relay(mut client: UnixStream, upstream: &Path, max: ApiVersion) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head over 64 KiB"));
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let Some(new_head) = rewrite_head(&head, max) else {
        return Err(std::io::Error::other("not an HTTP/1.x request"));
    };
    tracing::debug!(request = %new_head.lines().next().unwrap_or_default(), "relaying");
    let mut server = UnixStream::connect(upstream).await?;
    server.write_all(new_head.as_bytes()).await?;
    server.write_all(&buf[head_end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V141: ApiVersion = ApiVersion(1, 41);

    #[test]
    fn newer_versions_are_lowered_and_the_connection_closed() {
        let head = "POST /v1.52/containers/create?name=n1 HTTP/1.1\r\nHost: docker\r\n\
                    Content-Type: application/json\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(
            rewrite_head(head, V141).unwrap(),
            "POST /v1.41/containers/create?name=n1 HTTP/1.1\r\nHost: docker\r\n\
             Content-Type: application/json\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn older_and_unversioned_paths_are_left_alone() {
        for path in [
            "/v1.40/info",
            "/v1.41/info",
            "/_ping",
            "/version",
            "/v1.x/info",
        ] {
            let head = format!("GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n");
            let out = rewrite_head(&head, V141).unwrap();
            assert!(
                out.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
                "{out}"
            );
        }
    }

    #[test]
    fn upgrades_keep_their_connection_header() {
        let head = "POST /v1.52/exec/abc/start HTTP/1.1\r\nConnection: Upgrade\r\n\
                    Upgrade: tcp\r\n\r\n";
        assert_eq!(
            rewrite_head(head, V141).unwrap(),
            "POST /v1.41/exec/abc/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        );
    }

    #[test]
    fn not_http_is_refused() {
        assert_eq!(rewrite_head("hello\r\n\r\n", V141), None);
        assert_eq!(rewrite_head("GET / SPDY/3\r\n\r\n", V141), None);
    }

    #[test]
    fn versions_parse_and_order() {
        assert!("1.52".parse::<ApiVersion>().unwrap() > V141);
        assert!("1.9".parse::<ApiVersion>().unwrap() < V141);
        assert!("1".parse::<ApiVersion>().is_err());
    }
}
