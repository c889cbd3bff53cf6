//! Fresh keys and certificates per control plane, made with the openssl CLI
//! (no crypto crate in the dependency tree just for tests).
//!
//! The API server's serving certificate is signed by a separate CA: rustls
//! rejects a self-signed CA certificate presented as the server certificate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result, io};

#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// RSA key the API server verifies and the controller-manager signs
    /// service-account tokens with.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

impl Pki {
    /// `node_address` is added to the serving certificate's names.
    pub fn generate(dir: &Path, node_address: Option<IpAddr>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let p = |n: &str| dir.join(n);
        let pki = Self {
            ca_cert: p("ca.crt"),
            ca_key: p("ca.key"),
            serving_cert: p("apiserver.crt"),
            serving_key: p("apiserver.key"),
            sa_key: p("sa.key"),
            sa_pub: p("sa.pub"),
        };
        // EC keys for TLS: generating them is instant, unlike RSA.
        openssl(
            "req (CA)",
            dir,
            "req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
             -keyout ca.key -out ca.crt -days 3650 -subj /CN=stsmend-e2e-ca \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )?;
        openssl(
            "req (serving)",
            dir,
            "req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
             -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver",
        )?;
        // 10.96.0.1 is the `kubernetes` Service's ClusterIP, which pods use.
        let extra = node_address
            .map(|ip| format!(",IP:{ip}"))
            .unwrap_or_default();
        std::fs::write(
            p("serving.ext"),
            format!(
                "basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\n\
                 subjectAltName=IP:127.0.0.1,IP:10.96.0.1{extra},DNS:localhost,DNS:kubernetes,\
                 DNS:kubernetes.default,DNS:kubernetes.default.svc,\
                 DNS:kubernetes.default.svc.cluster.local\n"
            ),
        )
        .map_err(io("write serving.ext"))?;
        openssl(
            "x509 (serving)",
            dir,
            "x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
             -out apiserver.crt -days 365 -extfile serving.ext",
        )?;
        // RSA, like the service-account key kubeadm makes, so tokens are RS256 as usual.
        openssl("genrsa", dir, "genrsa -out sa.key 2048")?;
        openssl("rsa -pubout", dir, "rsa -in sa.key -pubout -out sa.pub")?;
        Ok(pki)
    }

    /// A client certificate signed by the CA, for `CN=cn, O=org`: a kubelet's
    /// is `system:node:NAME` in `system:nodes`. Written as `FILE.crt` and
    /// `FILE.key` in `dir`; returns their paths.
    pub fn client_cert(
        &self,
        dir: &Path,
        file: &str,
        cn: &str,
        org: &str,
    ) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let (crt, key, csr) = (
            dir.join(format!("{file}.crt")),
            dir.join(format!("{file}.key")),
            dir.join(format!("{file}.csr")),
        );
        let s = |p: &Path| p.display().to_string();
        openssl_args(
            "req (client)",
            dir,
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-keyout",
                &s(&key),
                "-out",
                &s(&csr),
                "-subj",
                &format!("/O={org}/CN={cn}"),
            ],
        )?;
        let ext = dir.join(format!("{file}.ext"));
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        )
        .map_err(io("write client extensions"))?;
        openssl_args(
            "x509 (client)",
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &s(&csr),
                "-CA",
                &s(&self.ca_cert),
                "-CAkey",
                &s(&self.ca_key),
                "-CAcreateserial",
                "-out",
                &s(&crt),
                "-days",
                "30",
                "-extfile",
                &s(&ext),
            ],
        )?;
        Ok((crt, key))
    }
}

/// `args` is split on whitespace; none of the arguments used here has spaces.
fn openssl(step: &'static str, dir: &Path, args: &str) -> Result<()> {
    openssl_args(step, dir, &args.split_whitespace().collect::<Vec<_>>())
}

fn openssl_args(step: &'static str, dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(io("run openssl (is it installed?)"))?;
    if !out.status.success() {
        return Err(Error::Openssl {
            step,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
