//! The OpenAPI document (`docs/openapi.json`, served at `GET /_ts/openapi.json`) against the
//! real server: every `/_ts/` route is documented, and real responses (success and error) have a
//! declared status, a declared content type and a body valid against the declared schema
//! (JSON Schema 2020-12, the dialect of OpenAPI 3.1, checked with the `jsonschema` crate).
//!
//! `.ci/run` additionally runs schemathesis against a live server with generated requests.

use std::collections::BTreeSet;
use std::net::TcpListener;

use serde_json::{Value, json};

use crate::support::{Origin, Response, Server, config, hmac_ec, http_raw, workspace_root};

/// Every route `server.rs` answers itself. A route added there must be added here and to the
/// document (the test below fails otherwise).
const ROUTES: &[&str] = &[
    "/_ts/health",
    "/_ts/metrics",
    "/_ts/openapi.json",
    "/_ts/api/v1/auction",
    "/_ts/api/v1/batch-sync",
    "/_ts/ec.js",
    "/_ts/api/v1/ec/resolve",
];

fn document() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("docs/openapi.json"))
        .expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is json")
}

/// Checks one real response against the operation `method path` of `doc`; panics naming what
/// does not conform.
fn conforms(doc: &Value, method: &str, path: &str, response: &Response) {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "`{method} {path}` is not documented");
    let declared = &operation["responses"][response.status.to_string()];
    assert!(
        declared.is_object(),
        "`{method} {path}` answered {}, which is not declared: {response:?}",
        response.status
    );
    let content_type = response.header("content-type").unwrap_or_default();
    let Some(content) = declared["content"].as_object() else {
        assert!(response.body.is_empty(), "undeclared body: {response:?}");
        return;
    };
    // A key is the content type as sent, or its media type without the parameters the header
    // adds (`; charset=utf-8`).
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let media = content
        .get(content_type)
        .or_else(|| content.get(essence))
        .unwrap_or_else(|| {
            panic!(
                "`{method} {path}` {}: content type `{content_type}` not declared ({:?})",
                response.status,
                content.keys().collect::<Vec<_>>()
            )
        });
    if !content_type.contains("json") {
        return;
    }
    let body: Value = serde_json::from_str(&response.body).expect("json body");
    // The operation's schema, resolved against the document's components.
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [media["schema"]],
    });
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "`{method} {path}` {} does not match the document: {errors:#?}\n{body:#}",
        response.status
    );
    for (name, header) in declared["headers"].as_object().into_iter().flatten() {
        let value = response.header(&name.to_ascii_lowercase());
        assert!(value.is_some(), "`{method} {path}`: no `{name}` header");
        let schema = jsonschema::validator_for(&header["schema"]).expect("header schema");
        assert!(
            schema.is_valid(&json!(value)),
            "`{method} {path}`: `{name}: {value:?}` does not match {}",
            header["schema"]
        );
    }
}

fn request(server: &Server, method: &str, path: &str, content_type: &str, body: &str) -> Response {
    http_raw(
        server.addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: news.example\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\nX-Geo-Country: US\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// The API key of the one partner in [`partner`].
const PARTNER_KEY: &str = "openapi-test-partner-key-0123456789abcdef";

/// One `[[partners]]` entry whose key is [`PARTNER_KEY`].
fn partner() -> String {
    let hash = gatehouse_core::sync::hash_api_key(PARTNER_KEY.as_bytes()).expect("long key");
    format!(
        "[[partners]]\nid = \"ssp\"\nname = \"SSP\"\nsource_domain = \"ssp.example\"\n\
         api_key_sha256 = \"{hash}\"\nbatch_rate_limit = 600\n"
    )
}

/// A bidder that bids on the first impression, and one that refuses connections.
fn bidders() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let id = serde_json::from_slice::<Value>(&body).unwrap_or_default()["id"].clone();
                let answer = json!({"id": id, "seatbid": [{"bid": [{"id": "1", "impid": "1",
                    "price": 0.7, "adm": "<b>ad</b>", "burl": "https://b.example/x", "adomain": ["a.example"]}]}]})
                .to_string();
                let _ = reader.get_mut().write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    format!(
        "[auction]\ntmax_ms = 10000\n\n[[auction.bidders]]\nname = \"bids\"\nurl = \"http://{addr}/\"\n\n\
         [[auction.bidders]]\nname = \"refused\"\nurl = \"http://127.0.0.1:9/\"\n"
    )
}

#[test]
fn openapi_document_is_served_and_documents_every_ts_route() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "OpenAPI 3.1"
    );
    let documented: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(documented, ROUTES.iter().copied().collect());
    let origin = Origin::start();
    let server = Server::start("openapi-served", &config(&origin.url(), "US", ""));
    let served = server.get("/_ts/openapi.json", &[]);
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body,
        std::fs::read_to_string(workspace_root().join("docs/openapi.json")).expect("doc"),
        "the server embeds docs/openapi.json as it is"
    );
    conforms(&doc, "get", "/_ts/openapi.json", &served);
}

#[test]
fn openapi_real_responses_match_the_document() {
    let doc = document();
    let origin = Origin::start();
    let server = Server::start(
        "openapi-responses",
        &config(
            &origin.url(),
            "US",
            &format!("{}\n{}\n{}", hmac_ec(), bidders(), partner()),
        ),
    );
    let get = |path: &str| server.get(path, &[]);
    conforms(&doc, "get", "/_ts/health", &get("/_ts/health"));
    conforms(&doc, "get", "/_ts/metrics", &get("/_ts/metrics"));
    conforms(
        &doc,
        "get",
        "/_ts/health",
        &request(&server, "POST", "/_ts/health", "text/plain", "x"),
    );
    let auction = "/_ts/api/v1/auction";
    let valid = json!({
        "page_url": "https://news.example/a",
        "ad_units": [
            {"code": "top", "media_type": "banner", "sizes": [[300, 250]]},
            {"code": "side", "media_type": "banner", "sizes": [[160, 600]], "floor": 1}
        ]
    })
    .to_string();
    let ok = request(&server, "POST", auction, "application/json", &valid);
    assert_eq!(ok.status, 200, "{ok:?}");
    let answer: Value = serde_json::from_str(&ok.body).expect("json");
    assert_eq!(answer["winners"][0]["bidder"], "bids", "{answer}");
    assert_eq!(answer["failed"], json!(["refused"]), "{answer}");
    conforms(&doc, "post", auction, &ok);
    let invalid = request(
        &server,
        "POST",
        auction,
        "application/json",
        r#"{"page_url": "ftp://x", "ad_units": []}"#,
    );
    assert_eq!(invalid.status, 400);
    conforms(&doc, "post", auction, &invalid);
    let media = request(&server, "POST", auction, "text/plain", &valid);
    assert_eq!(media.status, 415);
    conforms(&doc, "post", auction, &media);
    let large = http_raw(
        server.addr,
        b"POST /_ts/api/v1/auction HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(large.status, 413);
    conforms(&doc, "post", auction, &large);
    let method = get(auction);
    assert_eq!(method.status, 405);
    conforms(&doc, "post", auction, &method);
    let sync = "/_ts/api/v1/batch-sync";
    let sync_post = |auth: &str, content_type: &str, body: &str| {
        http_raw(
            server.addr,
            format!(
                "POST {sync} HTTP/1.1\r\nHost: news.example\r\nConnection: close\r\n{auth}\
                 Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let bearer = format!("Authorization: Bearer {PARTNER_KEY}\r\n");
    let cases = [
        ("", "application/json", r#"{"mappings": []}"#, 401),
        (
            bearer.as_str(),
            "application/json",
            r#"{"mappings": []}"#,
            200,
        ),
        (
            bearer.as_str(),
            "application/json",
            r#"{"mappings": [{"ec_id": "nope", "partner_uid": "u", "timestamp": 1}]}"#,
            207,
        ),
        (
            bearer.as_str(),
            "application/json",
            r#"{"mappings": 1}"#,
            400,
        ),
        (bearer.as_str(), "text/plain", r#"{"mappings": []}"#, 415),
    ];
    for (auth, content_type, body, status) in cases {
        let answer = sync_post(auth, content_type, body);
        assert_eq!(answer.status, status, "{body}: {answer:?}");
        conforms(&doc, "post", sync, &answer);
    }
    let sync_get = get(sync);
    assert_eq!(sync_get.status, 405);
    conforms(&doc, "post", sync, &sync_get);
    // With an Edge Cookie provider that computes its value on the server, the client-side
    // routes do not exist.
    let resolve = "/_ts/api/v1/ec/resolve";
    let script = get("/_ts/ec.js");
    assert_eq!(script.status, 404);
    conforms(&doc, "get", "/_ts/ec.js", &script);
    let absent = request(
        &server,
        "POST",
        resolve,
        "application/json",
        r#"{"value": "x"}"#,
    );
    assert_eq!(absent.status, 404);
    conforms(&doc, "post", resolve, &absent);
    // Without `[auction]`: 404.
    let plain = Server::start("openapi-no-auction", &config(&origin.url(), "US", ""));
    let missing = request(&plain, "POST", auction, "application/json", &valid);
    assert_eq!(missing.status, 404);
    conforms(&doc, "post", auction, &missing);
}

#[test]
fn openapi_client_side_edge_cookie_responses_match_the_document() {
    // The TEST-ONLY `client-fixed` provider: its script, and every answer of the resolve route.
    const FIXED: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.TEST00";
    let doc = document();
    let origin = Origin::start();
    let server = Server::start(
        "openapi-ec-resolve",
        &config(
            &origin.url(),
            "US",
            "[ec]\nprovider = \"client-fixed\"\ncookie_domain = \"example.test\"\n",
        ),
    );
    let script = server.get("/_ts/ec.js", &[]);
    assert_eq!(script.status, 200, "{script:?}");
    conforms(&doc, "get", "/_ts/ec.js", &script);
    let script_post = request(&server, "POST", "/_ts/ec.js", "text/plain", "");
    assert_eq!(script_post.status, 405);
    conforms(&doc, "get", "/_ts/ec.js", &script_post);
    let resolve = "/_ts/api/v1/ec/resolve";
    let body = |value: &str| json!({ "value": value }).to_string();
    for (content_type, payload, status) in [
        ("application/json", body(FIXED), 200),
        ("application/json", body("not-the-fixed-value"), 422),
        ("application/json", "{".to_owned(), 400),
        ("text/plain", body(FIXED), 415),
    ] {
        let answer = request(&server, "POST", resolve, content_type, &payload);
        assert_eq!(answer.status, status, "{payload}: {answer:?}");
        conforms(&doc, "post", resolve, &answer);
    }
    let large = http_raw(
        server.addr,
        b"POST /_ts/api/v1/ec/resolve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(large.status, 413);
    conforms(&doc, "post", resolve, &large);
    let method = server.get(resolve, &[]);
    assert_eq!(method.status, 405);
    conforms(&doc, "post", resolve, &method);
}

#[test]
fn openapi_document_rejects_a_response_that_does_not_match() {
    // The checker itself: a winner without a creative, an undeclared status, a wrong content
    // type are all caught.
    let doc = document();
    let response = |status: u16, content_type: &str, body: &str| Response {
        status,
        headers: vec![
            ("content-type".to_owned(), content_type.to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ],
        body: body.to_owned(),
    };
    let auction = "/_ts/api/v1/auction";
    let no_creative = r#"{"id":"1","currency":"USD","winners":[{"ad_unit":"a","bidder":"b","price":1}],
        "no_bid":[],"timed_out":[],"failed":[],"bidders":[]}"#;
    for bad in [
        response(200, "application/json", no_creative),
        response(201, "application/json", "{}"),
        response(400, "application/json", "{}"),
        response(
            400,
            "application/problem+json",
            r#"{"type":"x","title":"t","status":400}"#,
        ),
    ] {
        let caught = std::panic::catch_unwind(|| conforms(&doc, "post", auction, &bad));
        assert!(caught.is_err(), "not caught: {bad:?}");
    }
}

#[test]
fn openapi_pending_fragments_are_well_formed() {
    // `docs/openapi-pending/*.json`: path objects other branches add, folded in by the lead
    // (see its README). Each is `{"paths": {...}, "components": {"schemas": {...}}}` with new
    // `/_ts/` paths only and no schema name the document already defines.
    let doc = document();
    let dir = workspace_root().join("docs/openapi-pending");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.map_while(Result::ok) {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let fragment: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let keys: BTreeSet<&str> = fragment
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.iter().all(|k| ["paths", "components"].contains(k)),
            "{}: only `paths` and `components`",
            path.display()
        );
        for route in fragment["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(route.starts_with("/_ts/"), "{}: {route}", path.display());
            assert!(
                doc["paths"].get(route).is_none(),
                "{}: {route} exists",
                path.display()
            );
        }
        for name in fragment["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(
                doc["components"]["schemas"].get(name).is_none(),
                "{}: schema `{name}` exists",
                path.display()
            );
        }
    }
}
