//! R8.1: the OpenAPI document describes the whole operator API. It parses, lists exactly
//! the routes the routers declare (found in the router sources, so a new route without a
//! description fails here), every described operation is really served, and every
//! operation shows at least one response example.

use testkit::harness as common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use testkit::memory::{ManualClock, MemoryTable};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// A route declared in a router source: method, path, and the function declaring it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Declared {
    method: String,
    path: String,
    in_fn: String,
    file: String,
}

/// The text from `open` (an opening parenthesis) to its matching close.
fn balanced(s: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, ch) in s[open..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    &s[open + 1..]
}

/// Every `.route("path", get(..).post(..))` of the HTTP sources but the webhook (a
/// separate function for Meta, not the operator API).
fn declared_routes() -> Vec<Declared> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".rs") || file == "webhook.rs" {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let mut at = 0;
        while let Some(i) = src[at..].find(".route(") {
            let open = at + i + ".route".len();
            let args = balanced(&src, open);
            at = open + 1;
            let Some(q1) = args.find('"') else { continue };
            let Some(q2) = args[q1 + 1..].find('"') else {
                continue;
            };
            let route = &args[q1 + 1..q1 + 1 + q2];
            let handlers = &args[q1 + 2 + q2..];
            let in_fn = src[..open]
                .rfind("fn ")
                .map(|f| {
                    src[f + 3..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .unwrap_or_default();
            for m in METHODS {
                // `get(` at a word boundary: `.get(`, ` get(`, `(get(`, `::get(`.
                let needle = format!("{m}(");
                let mut k = 0;
                while let Some(j) = handlers[k..].find(&needle) {
                    let pos = k + j;
                    let before = handlers[..pos].chars().last();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        out.push(Declared {
                            method: m.to_owned(),
                            path: route.to_owned(),
                            in_fn: in_fn.clone(),
                            file: file.clone(),
                        });
                        break;
                    }
                    k = pos + needle.len();
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn document() -> Value {
    let json = shared::http::openapi::document().to_json().unwrap();
    serde_json::from_str(&json).expect("the document is JSON")
}

fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()), op.clone());
            }
        }
    }
    ops
}

#[test]
fn r8_1_openapi_document_parses_and_lists_every_route() {
    let doc = document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Campaign engine API");
    let described: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
    let declared: BTreeSet<(String, String)> = declared_routes()
        .into_iter()
        .map(|d| (d.method, d.path))
        .collect();
    assert!(
        declared.len() >= 20,
        "the route scan found too little: {declared:?}"
    );
    let undocumented: Vec<_> = declared.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&declared).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an OpenAPI description: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "described operations no router declares: {unserved:?}"
    );
    for must in [
        ("post", "/campaigns"),
        ("get", "/campaigns"),
        ("patch", "/campaigns/{id}"),
        ("delete", "/campaigns/{id}"),
        ("post", "/campaigns/{id}/test"),
        ("get", "/campaigns/{id}/tests"),
        ("get", "/tenant"),
        ("put", "/tenant"),
        ("get", "/openapi.json"),
    ] {
        assert!(
            described.contains(&(must.0.to_owned(), must.1.to_owned())),
            "{must:?} missing"
        );
    }
    // Every schema a description refers to is in the components.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
}

#[tokio::test]
async fn r8_1_every_described_operation_is_served() {
    let api = common::operator_api(common::memory_operator(
        Arc::new(MemoryTable::new()),
        Arc::new(ManualClock::system()),
    ));
    // Routes declared on the operator router itself (others, like the template sync on
    // its own state, are merged by the composition root).
    let on_api: BTreeSet<(String, String)> = declared_routes()
        .into_iter()
        .filter(|d| d.in_fn == "router" && d.file == "operator.rs" || d.in_fn == "routes")
        .map(|d| (d.method, d.path))
        .collect();
    for (method, path) in operations(&document()).into_keys() {
        if !on_api.contains(&(method.clone(), path.clone())) {
            continue;
        }
        let uri: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let req = common::request(
            common::TENANT,
            Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
            &uri,
            "application/json",
            Body::from("{}"),
        );
        let (status, body) = common::send(&api, req).await;
        let body = String::from_utf8_lossy(&body);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no such route")),
            "{method} {path} is described but not served: {body}"
        );
    }
    // The document itself needs no tenant.
    let req = Request::builder()
        .uri("/openapi.json")
        .body(Body::empty())
        .unwrap();
    let (status, bytes) = common::send(
        &shared::http::operator::router(common::memory_operator(
            Arc::new(MemoryTable::new()),
            Arc::new(ManualClock::system()),
        )),
        req,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, document());
}

#[test]
fn r8_1_every_operation_has_a_response_example() {
    let doc = document();
    let mut missing = Vec::new();
    for ((method, path), op) in operations(&doc) {
        let has = op["responses"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
            .filter_map(|resp| resp["content"].as_object())
            .flat_map(|c| c.values())
            .any(|media| {
                !media["example"].is_null()
                    || media["examples"].as_object().is_some_and(|e| !e.is_empty())
            });
        if !has {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(
        missing.is_empty(),
        "operations without any response example: {missing:?}"
    );
}

#[test]
fn r8_1_openapi_document_round_trips_through_json() {
    let doc = shared::http::openapi::document();
    let v = serde_json::to_value(&doc).unwrap();
    let back: utoipa::openapi::OpenApi = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), v);
}
