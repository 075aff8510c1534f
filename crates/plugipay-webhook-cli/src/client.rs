//! The HTTP(S) client `send`, `replay` and `listen --forward-to` share: a
//! keep-alive HTTP/1.1 connection over TCP or TLS (rustls with Mozilla's
//! roots — no system OpenSSL), reopened when it fails.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

use crate::Failure;

/// TLS options for `https://` URLs.
#[derive(Debug, Clone, Args)]
pub(crate) struct TlsArgs {
    /// Trust the certificates in this PEM file too (a local or staging CA).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,

    /// Accept any server certificate (local testing only: anyone on the
    /// path can read and change the traffic).
    #[arg(long)]
    insecure: bool,
}

/// Where requests go.
#[derive(Clone)]
pub(crate) struct Target {
    host: String,
    authority: String,
    pub(crate) path: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("authority", &self.authority)
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// Parses `http://…` or `https://…`.
    pub(crate) fn parse(url: &str, tls: &TlsArgs) -> Result<Target, Failure> {
        // Errors name the URL without its password (a database URL given
        // here by mistake is the usual way one would carry one).
        let shown = plugipay_webhook_dispatch::redact_url(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| Failure::io(format!("not a URL: {shown}: {e}")))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(Failure::io(format!(
                    "the URL must start with http:// or https:// (got {shown})"
                )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| Failure::io(format!("no host in {shown}")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Target {
            authority: if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            },
            host,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            tls: https.then(|| tls.connector()).transpose()?,
        })
    }
}

impl TlsArgs {
    fn connector(&self) -> Result<tokio_rustls::TlsConnector, Failure> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Failure::io(format!("TLS set-up: {e}")))?;
        let config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let mut pinned = Vec::new();
            if let Some(path) = &self.cacert {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| Failure::io(format!("cannot read {}: {e}", path.display())))?;
                let mut added = 0;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        Failure::io(format!("{}: not a PEM certificate: {e}", path.display()))
                    })?;
                    pinned.push(cert.clone());
                    roots.add(cert).map_err(|e| {
                        Failure::io(format!("{}: unusable certificate: {e}", path.display()))
                    })?;
                    added += 1;
                }
                if added == 0 {
                    return Err(Failure::io(format!(
                        "{} holds no PEM certificate",
                        path.display()
                    )));
                }
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Failure::io(format!("TLS set-up: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki { pinned, webpki }))
                .with_no_client_auth()
        };
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// The usual checks (Mozilla's roots and `--cacert`'s certificates as
/// trust anchors), except that a server certificate byte-identical to one
/// given with `--cacert` is the user's explicit trust and accepted as it is —
/// the self-signed certificate of `openssl req -x509 …`, which marks itself a
/// CA and so is refused as a server's own by the usual checks — still
/// checking that it names the server and that the handshake is signed with
/// its key.
#[derive(Debug)]
struct PinnedOrWebPki {
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
            cert.verify_is_valid_for_subject_name(server_name)
                .map_err(|_| {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                })?;
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Why the server's certificate was refused, in words, and what to do.
fn explain_tls(e: &std::io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match cert {
        C::UnknownIssuer => "the server's certificate is not signed by an authority this command \
             trusts: pass its CA certificate (or the server's own certificate) with --cacert \
             FILE, or --insecure for a quick local test"
            .to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the server's certificate is not issued for {host}: use the name it was issued for \
             in the URL (its subjectAltName), or issue one that names {host}"
        ),
        C::Expired | C::ExpiredContext { .. } => {
            "the server's certificate has expired: renew it".to_owned()
        }
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (is this machine's clock right?)".to_owned()
        }
        C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => format!(
            "the server presents a CA certificate as its own (a self-signed certificate made \
             with `openssl req -x509` is one): pass that very certificate with --cacert FILE \
             to trust it explicitly ({other})"
        ),
        other => format!("the server's certificate was refused: {other:?}"),
    }
}

/// `--insecure`: every certificate is accepted; signatures are still checked
/// so the handshake itself is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A keep-alive HTTP/1.1 connection, reopened when it fails.
pub(crate) struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(crate) fn new(target: Target) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect(&self.target.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", self.target.authority))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.target.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
                    .map_err(|e| format!("{}: {e}", self.target.host))?;
                Box::new(tls.connect(name, tcp).await.map_err(|e| {
                    format!(
                        "TLS with {}: {}",
                        self.target.authority,
                        explain_tls(&e, &self.target.host)
                    )
                })?)
            }
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// POSTs `body` with `headers` (the signature among them), within
    /// `timeout` in all; the status and the response body.
    pub(crate) async fn post(
        &mut self,
        body: Bytes,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let fut = async {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.sender = Some(self.connect().await?);
            }
            let sender = self.sender.as_mut().expect("connected just above");
            sender.ready().await.map_err(|e| e.to_string())?;
            let mut req = Request::post(self.target.path.as_str())
                .header(http::header::HOST, self.target.authority.as_str())
                .header(
                    http::header::USER_AGENT,
                    concat!("plugipay-webhook-cli/", env!("CARGO_PKG_VERSION")),
                );
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
            }
            for (name, value) in headers {
                req = req.header(name.as_str(), value.as_str());
            }
            let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, bytes))
        };
        let result = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        };
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// `--header K:V` (repeatable), parsed.
pub(crate) fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("--header {text:?}: write it as NAME:VALUE"))?;
    let name = name.trim();
    http::HeaderName::try_from(name).map_err(|e| format!("--header {name:?}: {e}"))?;
    let value = value.trim();
    http::HeaderValue::try_from(value).map_err(|e| format!("--header {name}: {e}"))?;
    Ok((name.to_owned(), value.to_owned()))
}
