//! R8.1: the OpenAPI document describes the whole operator API. It parses, lists exactly
//! the routes the routers declare (found in the router sources, so a new route without a
//! description fails here), every described operation is really served, and every
//! operation shows at least one response example. The served document also describes
//! the webhooks and the local runner's routes, and states the input rules the handlers
//! apply (issue 13), which `scripts/api-fuzz.sh` then holds the code to.

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

/// Every `.route("path", get(..).post(..))` of the HTTP sources (the operator API and the
/// webhooks), of the local runner and of the simulator's control routes it serves under
/// `/local/sim`.
fn declared_routes() -> Vec<Declared> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut sources: Vec<(PathBuf, &str)> = std::fs::read_dir(root.join("src/http"))
        .unwrap()
        .map(|e| (e.unwrap().path(), ""))
        .collect();
    sources.push((root.join("../functions/local/src/control.rs"), ""));
    sources.push((
        root.join("../testkit/src/simulator/control.rs"),
        "/local/sim",
    ));
    let mut out = Vec::new();
    for (path, prefix) in sources {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".rs") {
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
            let route = format!("{prefix}{}", &args[q1 + 1..q1 + 1 + q2]).replace("{*", "{");
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
                            path: route.clone(),
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

/// What `GET /openapi.json` serves.
fn document() -> Value {
    let json = shared::http::openapi::served_document().to_string();
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
        .filter(|d| {
            d.in_fn == "router" && d.file == "operator.rs"
                || d.in_fn == "routes" && d.file != "control.rs"
        })
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

/// Issue 13: the document states what the handlers answer to bad input. Every operation
/// that reads a body or parameters documents the 400, every one acting for a tenant the
/// 401, every `/campaigns` one the 403 of a tenant with campaigns disabled; phone path
/// parameters carry the parser's pattern and its 422; every `limit` has its range;
/// optional query parameters may be empty (an empty one is an absent one).
#[test]
fn issue_13_the_document_states_the_input_rules() {
    let doc = document();
    let responses = &doc["components"]["responses"];
    for shared in ["BadRequest", "Unauthorized", "CampaignsDisabled"] {
        assert!(responses[shared].is_object(), "{shared} missing");
    }
    let mut phones = 0;
    for ((method, path), op) in operations(&doc) {
        let at = format!("{} {path}", method.to_uppercase());
        let codes = op["responses"].as_object().unwrap();
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let reads_input = op.get("requestBody").is_some() || !params.is_empty();
        if reads_input && path != "/openapi.json" {
            assert!(codes.contains_key("400"), "{at} documents no 400");
        }
        let own_security = op.get("security").is_some();
        if !own_security && path != "/openapi.json" {
            assert!(codes.contains_key("401"), "{at} documents no 401");
        }
        if path.starts_with("/campaigns") {
            assert!(codes.contains_key("403"), "{at} documents no 403");
        }
        for p in &params {
            let name = p["name"].as_str().unwrap();
            if p["in"] == "path" && name == "phone" {
                phones += 1;
                assert_eq!(
                    p["schema"]["pattern"],
                    shared::http::openapi::PHONE_PATTERN,
                    "{at}"
                );
                assert!(codes.contains_key("422"), "{at} documents no 422 for phone");
            }
            if p["in"] == "query" && name == "limit" {
                assert_eq!(p["schema"]["minimum"], 1, "{at}");
                assert!(p["schema"]["maximum"].as_u64().is_some(), "{at}");
            }
            // The hopper views refuse an empty limit, cursor or filter
            // (r4_hopper_views.rs); everywhere else an empty parameter is an absent one.
            let as_given = ["open", "history", "entries"]
                .contains(&op["operationId"].as_str().unwrap_or(""))
                && ["limit", "cursor", "reason", "disposition"].contains(&name);
            if p["in"] == "query" && p["required"] != true && p.get("content").is_none() {
                assert_eq!(p["allowEmptyValue"] == true, !as_given, "{at} {name}");
            }
        }
    }
    assert!(phones >= 8, "{phones} phone path parameters");
    // The webhooks and the local runner's routes are described, the latter tagged.
    let ops = operations(&doc);
    for (method, path) in [
        ("get", "/health"),
        ("get", "/webhooks/meta"),
        ("post", "/webhooks/meta"),
        ("post", "/webhooks/kaleyra"),
        ("post", "/local/clock/advance"),
    ] {
        let op = &ops[&(method.to_owned(), path.to_owned())];
        assert_eq!(op["security"].as_array().map(Vec::len), Some(1), "{path}");
        if path.starts_with("/local") || path == "/health" {
            assert_eq!(op["tags"], serde_json::json!(["local"]), "{path}");
        }
    }
    // Security: the local header first, then the JWT (either one).
    let security = doc["security"].as_array().unwrap();
    assert!(security[0].get("tenant_header").is_some(), "{security:?}");
    assert!(security[1].get("jwt").is_some(), "{security:?}");
}

/// Issue 13: required fields are required and never null in the document; fields with a
/// rule beyond their type state it.
#[test]
fn issue_13_required_fields_and_field_rules() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        ("NewCampaign", &["name"][..]),
        ("NewBlockList", &["name"]),
        ("NewList", &["name"]),
        ("NewOptOut", &["phone"]),
        ("NewTemplate", &["account_id", "name"]),
        ("NewAccount", &["name", "sender_id", "token_ref"]),
        ("RecontactRequest", &["account_id"]),
        ("StepRequest", &["step"]),
        ("BlockNumbers", &["phones"]),
    ] {
        let required = schemas[schema]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for f in fields {
            assert!(
                required.contains(&Value::from(*f)),
                "{schema}.{f} is not required"
            );
            let ty = &schemas[schema]["properties"][f]["type"];
            assert!(
                ty.as_str().is_some(),
                "{schema}.{f} must be one type, not nullable: {ty}"
            );
        }
    }
    let step = &schemas["StepRequest"]["properties"]["step"];
    assert_eq!(
        (step["minLength"].as_u64(), step["maxLength"].as_u64()),
        (Some(1), Some(64))
    );
    assert!(step["pattern"].as_str().unwrap().contains(';'));
    assert_eq!(
        schemas["ResetRequest"]["properties"]["confirm"]["enum"],
        serde_json::json!([true])
    );
    let phones = &schemas["BlockNumbers"]["properties"]["phones"];
    assert_eq!(
        (phones["minItems"].as_u64(), phones["maxItems"].as_u64()),
        (Some(1), Some(1000))
    );
    for (schema, field) in [("NewContact", "valued_tags"), ("Segment", "valued_tags")] {
        assert_eq!(
            schemas[schema]["properties"][field]["propertyNames"]["minLength"], 1,
            "{schema}.{field}"
        );
    }
    let ops = operations(&doc);
    let import = &ops[&("post".to_owned(), "/contacts/import".to_owned())];
    let mapping = import["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mapping")
        .unwrap();
    assert_eq!(
        mapping["content"]["application/json"]["schema"]["type"],
        "object"
    );
    let sync = &ops[&(
        "post".to_owned(),
        "/accounts/{id}/templates/sync".to_owned(),
    )];
    assert_eq!(sync["requestBody"]["required"], false);
    let contacts = &ops[&("post".to_owned(), "/contacts".to_owned())];
    let created = &contacts["responses"]["201"]["content"]["application/json"]["schema"];
    let name = created["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    assert_eq!(
        schemas[name]["oneOf"].as_array().map(Vec::len),
        Some(2),
        "{name}"
    );
    let campaigns = &ops[&("get".to_owned(), "/campaigns".to_owned())];
    let channel = campaigns["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "channel")
        .unwrap();
    assert!(
        channel["schema"].to_string().contains("Channel"),
        "{channel}"
    );
}

/// Issue 19, item 1: a client generated from `/openapi.json` can drive a demo or an
/// acceptance run: the webhooks, `/health` and every local control route are described
/// (the local ones tagged `local`), with the filters of the local listings; and every
/// route the runner serves is among them (`declared_routes` reads the runner's router).
#[test]
fn issue_19_the_document_describes_the_webhook_health_and_local_routes() {
    let doc = document();
    let ops = operations(&doc);
    let declared = declared_routes();
    for (method, path) in [
        ("get", "/health"),
        ("get", "/webhooks/meta"),
        ("post", "/webhooks/meta"),
        ("post", "/webhooks/kaleyra"),
        ("get", "/local/clock"),
        ("post", "/local/clock/advance"),
        ("get", "/local/events"),
        ("get", "/local/sim/messages"),
        ("get", "/local/sim/webhooks"),
        ("post", "/local/sim/reply"),
        ("put", "/local/objects/{key}"),
    ] {
        let op = ops
            .get(&(method.to_owned(), path.to_owned()))
            .unwrap_or_else(|| panic!("{method} {path} is not described"));
        if path.starts_with("/local") || path == "/health" {
            assert_eq!(op["tags"], serde_json::json!(["local"]), "{path}");
        }
    }
    assert!(
        declared.iter().any(|d| d.path == "/local/events"),
        "the runner's routes are read: {declared:?}"
    );
    let names = |path: &str| -> Vec<String> {
        ops[&("get".to_owned(), path.to_owned())]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names("/local/sim/messages"),
        ["tenant", "campaign", "phone", "limit", "cursor"]
    );
    assert_eq!(
        names("/local/events"),
        ["type", "tenant", "campaign", "limit", "cursor"]
    );
    assert_eq!(
        names("/campaigns/{id}/hopper/entries"),
        ["id", "state", "reason", "disposition", "limit", "cursor"]
    );
}
