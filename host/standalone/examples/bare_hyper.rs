//! The baseline of `benches/realistic.sh`: a bare hyper server (the same hyper-util `auto`
//! connection builder and multi-threaded tokio runtime as `gatehouse serve`) answering every
//! request with the page Gatehouse's built-in demo origin serves, and nothing else: no client
//! IP, no consent, no providers, no proxying. What Gatehouse adds is measured against it.
//!
//! `cargo run --release -p gatehouse --example bare_hyper` binds 127.0.0.1 on a port the OS
//! picks and prints `bare hyper listening on http://ADDR`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

fn page(path: &str) -> String {
    let escaped = path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Gatehouse demo origin</title></head>\
         <body><h1>Gatehouse demo origin</h1><p>You asked for <code>{escaped}</code>. Gatehouse decided what \
         it may do with your data before this page was served; look at the response's \
         <code>Set-Cookie</code> header.</p></body></html>\n"
    )
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from(page(req.uri().path()))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("bare hyper listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                .await;
        });
    }
}
