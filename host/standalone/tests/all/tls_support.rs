//! Test support for TLS and HTTP/2: a test CA made per test (rcgen), a loopback HTTPS origin that
//! speaks HTTP/1.1 and HTTP/2 by ALPN, and HTTP/2 (h2c and TLS) and HTTPS/1.1 clients.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::support::{Response, temp_dir};

/// A test certificate authority, and the files of certificates it issued.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    dir: PathBuf,
}

/// A leaf certificate's files.
pub struct Leaf {
    /// Certificate chain (leaf only), PEM file.
    pub cert: PathBuf,
    /// Private key, PEM file.
    pub key: PathBuf,
}

impl TestCa {
    /// A fresh CA.
    pub fn new(label: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Gatehouse test CA {label}"));
        let cert = params.self_signed(&key).expect("self-sign ca");
        let dir = temp_dir(&format!("ca-{label}"));
        std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write ca");
        Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            dir,
        }
    }

    /// The CA certificate's PEM file.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate for `names`, written to files named after `label`.
    pub fn issue(&self, label: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let leaf = Leaf {
            cert: self.dir.join(format!("{label}.pem")),
            key: self.dir.join(format!("{label}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }

    /// A rustls client config trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()) {
            roots.add(cert.expect("ca pem")).expect("add ca");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

fn server_config(leaf: &Leaf, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(&leaf.cert)
        .expect("cert file")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("key pem");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server cert");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Runs `future` on a fresh single-threaded runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A loopback HTTPS origin: answers 200 to everything and records each request's HTTP version.
pub struct TlsOrigin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The HTTP version of every request received.
    pub versions: Arc<Mutex<Vec<Version>>>,
}

impl TlsOrigin {
    /// Starts the origin with `leaf`, offering `alpn` (`h2`, `http/1.1`).
    pub fn start(leaf: &Leaf, alpn: &[&[u8]]) -> Self {
        let config = server_config(leaf, alpn);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tls origin");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let versions = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&versions);
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    while let Ok((stream, _)) = listener.accept().await {
                        let acceptor = acceptor.clone();
                        let seen = Arc::clone(&seen);
                        tokio::spawn(async move {
                            // A refused handshake (the proxy distrusts us) just ends here.
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let service = hyper::service::service_fn(move |req: Request<_>| {
                                seen.lock().expect("versions").push(req.version());
                                async move {
                                    let mut response = http::Response::new(Full::new(
                                        Bytes::from_static(b"<html><body>tls origin</body></html>"),
                                    ));
                                    response
                                        .headers_mut()
                                        .insert("x-origin", http::HeaderValue::from_static("tls"));
                                    Ok::<_, std::convert::Infallible>(response)
                                }
                            });
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(tls), service)
                                    .await;
                        });
                    }
                });
        });
        Self { addr, versions }
    }
}

/// `GET path` over HTTP/2 on `io`; the response's HTTP version is checked to be HTTP/2.
async fn h2_get<I>(io: I, path: &str, headers: &[(&str, &str)]) -> Response
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut request = Request::get(format!("http://site.example{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("h2 response");
    assert_eq!(response.version(), Version::HTTP_2);
    collect(response).await
}

/// `GET path` over HTTP/1.1 on `io`.
async fn h1_get<I>(io: I, path: &str, headers: &[(&str, &str)]) -> Response
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("h1 handshake");
    tokio::spawn(connection);
    let mut request = Request::get(path).header("host", "site.example");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("h1 response");
    collect(response).await
}

async fn collect(response: http::Response<hyper::body::Incoming>) -> Response {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Response {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().expect("ascii header").to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET path` over cleartext HTTP/2 with prior knowledge (h2c), as a load balancer sends it.
pub fn h2c_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        h2_get(stream, path, headers).await
    })
}

/// `GET path` over TLS to `addr` (server name `localhost`), trusting `ca`, offering `alpn`; the
/// response and the negotiated protocol.
pub fn tls_get(
    addr: SocketAddr,
    ca: &TestCa,
    alpn: &[&[u8]],
    path: &str,
    headers: &[(&str, &str)],
) -> (Response, Option<Vec<u8>>) {
    block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let connector = tokio_rustls::TlsConnector::from(ca.client_config(alpn));
        let tls = connector
            .connect(ServerName::try_from("localhost").expect("name"), stream)
            .await
            .expect("tls handshake");
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let response = if negotiated.as_deref() == Some(b"h2") {
            h2_get(tls, path, headers).await
        } else {
            h1_get(tls, path, headers).await
        };
        (response, negotiated)
    })
}

/// `[server.tls]` for a config, with `leaf`'s files.
pub fn server_tls_section(leaf: &Leaf) -> String {
    format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// Path as a TOML string body.
pub fn toml_path(path: &Path) -> String {
    path.display().to_string()
}
