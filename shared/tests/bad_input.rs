//! Bad input gets a clear error naming what is wrong, never a retryable 503 or a silently
//! dropped field (issue 13, the API fuzzer's findings).

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use shared::ports::Table;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;

fn env_on(table: Arc<dyn Table>) -> Spawned {
    Spawn::new(table).build()
}

fn memory() -> Spawned {
    env_on(Arc::new(MemoryTable::new()))
}

async fn dynamo() -> Spawned {
    env_on(Arc::new(
        common::dynamo_table("DynamoDB bad input", "badinput").await,
    ))
}

/// Every listing answers a cursor it never gave out (garbage, empty, another tenant's
/// page) with 400 naming `cursor`: a 503 tells a client to retry forever.
async fn malformed_cursor(h: Spawned) {
    let list = h
        .ok(Method::POST, "/lists", Some(json!({"name": "Customers"})))
        .await;
    let list = list["id"].as_str().unwrap();
    let block = h
        .ok(
            Method::POST,
            "/block-lists",
            Some(json!({"name": "Blocked"})),
        )
        .await;
    let block = block["id"].as_str().unwrap();
    let contacts: Vec<Value> = (0..3)
        .map(|i| json!({"phone": format!("91981234000{i}"), "name": "C"}))
        .collect();
    h.ok(Method::POST, "/contacts", Some(json!(contacts))).await;
    // A real cursor of another tenant's listing.
    let theirs: Vec<Value> = (0..3)
        .map(|i| json!({"phone": format!("91981234100{i}"), "name": "G"}))
        .collect();
    h.ok_as("globex", Method::POST, "/contacts", Some(json!(theirs)))
        .await;
    let glist = h
        .ok_as("globex", Method::POST, "/lists", Some(json!({"name": "G"})))
        .await;
    let glist = glist["id"].as_str().unwrap();
    let phones: Vec<Value> = theirs.iter().map(|c| c["phone"].clone()).collect();
    h.ok_as(
        "globex",
        Method::POST,
        &format!("/lists/{glist}/members"),
        Some(json!({ "phones": phones })),
    )
    .await;
    let page = h
        .ok_as(
            "globex",
            Method::GET,
            &format!("/lists/{glist}/members?limit=1"),
            None,
        )
        .await;
    let foreign = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let foreign = common::urlencode(&foreign);
    for path in [
        "/contacts".to_owned(),
        format!("/lists/{list}/members"),
        "/block-lists".to_owned(),
        format!("/block-lists/{block}/numbers"),
        "/opt-outs".to_owned(),
    ] {
        for cursor in ["abc", "%7B%22PK%22%3A1%7D", "%5B%5D", foreign.as_str()] {
            let uri = format!("{path}?cursor={cursor}");
            let (s, v) = h.call(Method::GET, &uri, None).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
            assert_eq!(v["field"], "cursor", "{uri}: {v}");
        }
        // An empty cursor is no cursor: the first page.
        let first = h.ok(Method::GET, &path, None).await;
        for empty in ["cursor=", "cursor", "cursor=&limit="] {
            let uri = format!("{path}?{empty}");
            let (s, v) = h.call(Method::GET, &uri, None).await;
            assert_eq!((s, &v), (StatusCode::OK, &first), "{uri}");
        }
    }
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    malformed_cursor: a_malformed_cursor_is_a_400_naming_it, a_malformed_cursor_is_a_400_naming_it_on_emulator;
}

/// Every request body refuses a field it does not know, with a 400 naming it: a typo
/// such as `rate_limt` must not leave an account at its default rate without a word.
async fn unknown_fields(h: Spawned) {
    let cases: Vec<(Method, &str, &str, Value)> = vec![
        (
            Method::POST,
            "/accounts",
            "rate_limt",
            json!({"name": "Main", "sender_id": "106540352242922",
            "token_ref": "env:SIM_TOKEN", "waba_id": "102290129340398", "rate_limt": 5}),
        ),
        (
            Method::POST,
            "/contacts",
            "nmae",
            json!({"phone": "919812340000", "nmae": "Asha"}),
        ),
        (
            Method::POST,
            "/contacts",
            "nmae",
            json!([{"phone": "919812340000", "nmae": "Asha"}]),
        ),
        (
            Method::PUT,
            "/contacts/919812340000",
            "nmae",
            json!({"nmae": "Asha"}),
        ),
        (
            Method::POST,
            "/lists",
            "descrption",
            json!({"name": "L", "descrption": "x"}),
        ),
        (
            Method::POST,
            "/lists/lst_x/members",
            "phone",
            json!({"phones": [], "phone": "1"}),
        ),
        (
            Method::POST,
            "/campaigns/cmp_x/lists",
            "mode",
            json!({"list_id": "lst_x", "mode": 1}),
        ),
        (
            Method::POST,
            "/campaigns/cmp_x/segments",
            "tgas",
            json!({"tags": ["vip"], "tgas": 1}),
        ),
        (
            Method::POST,
            "/imports",
            "maping",
            json!({"list_id": "lst_x", "maping": {}}),
        ),
        (
            Method::POST,
            "/templates",
            "bdy",
            json!({"name": "t", "bdy": "x"}),
        ),
        (
            Method::PUT,
            "/templates/acc_x/t/en",
            "bdy",
            json!({"bdy": "x"}),
        ),
        (
            Method::PUT,
            "/accounts/acc_x/recontact-template",
            "lang",
            json!({"name": "t", "language": "en", "lang": "en"}),
        ),
        (
            Method::POST,
            "/accounts/acc_x/templates/sync",
            "waba",
            json!({"waba": "1"}),
        ),
    ];
    for (method, path, typo, body) in cases {
        let (s, v) = h.call(method.clone(), path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path} {body}: {v}");
        let field = v["field"].as_str().unwrap_or_default();
        assert!(
            field == typo || field.ends_with(&format!(".{typo}")),
            "{method} {path}: the field is named: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains(typo), "{v}");
    }
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    unknown_fields: every_body_refuses_an_unknown_field, every_body_refuses_an_unknown_field_on_emulator;
}

/// Every listing reads its query like the rest of the API: a value that cannot be its
/// type or is out of range is a JSON 400 naming the parameter (never plain text, never
/// silently clamped), and an empty parameter is an absent one.
#[tokio::test]
async fn query_parameters_are_checked_and_named() {
    let h = memory();
    let list = h
        .ok(Method::POST, "/lists", Some(json!({"name": "L"})))
        .await;
    let list = list["id"].as_str().unwrap().to_owned();
    let block = h
        .ok(Method::POST, "/block-lists", Some(json!({"name": "B"})))
        .await;
    let block = block["id"].as_str().unwrap().to_owned();
    let listings = [
        ("/campaigns".to_owned(), 100),
        ("/contacts".to_owned(), 100),
        ("/block-lists".to_owned(), 100),
        (format!("/block-lists/{block}/numbers"), 1000),
        ("/opt-outs".to_owned(), 1000),
        (format!("/lists/{list}/members"), 1000),
    ];
    for (path, max) in &listings {
        for bad in [
            "-1".to_owned(),
            "0".to_owned(),
            "abc".to_owned(),
            format!("{}", max + 1),
            "1.5".to_owned(),
        ] {
            let uri = format!("{path}?limit={bad}");
            let (s, v) = h.call(Method::GET, &uri, None).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
            assert_eq!(v["field"], "limit", "{uri}: {v}");
            assert_eq!(v["error"], "bad_request", "{uri}: {v}");
        }
        let uri = format!("{path}?limit={max}");
        let (s, v) = h.call(Method::GET, &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        let uri = format!("{path}?limit=&cursor=");
        let (s, v) = h.call(Method::GET, &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
    }
    // A duplicated parameter is a JSON 400 too.
    let (s, v) = h.call(Method::GET, "/contacts?limit=1&limit=2", None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{v}"
    );
    // An empty filter is no filter.
    let (s, v) = h
        .call(Method::GET, "/campaigns?channel=&status=", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The campaigns cursor is a campaign id: anything else names `cursor` (422, as the
    // store's own check answers), never an empty page.
    for cursor in ["zzz", "cmp_1", "lst_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f"] {
        let (s, v) = h
            .call(Method::GET, &format!("/campaigns?cursor={cursor}"), None)
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")),
            "{cursor}: {v}"
        );
    }
}

/// A body is one JSON object: an array or a bare value is a 400 naming the body (serde
/// would fill a struct from an array); `POST /contacts` alone takes an array as well.
/// Whole numbers written as floats (`5.0`) are whole numbers, as JSON Schema says.
#[tokio::test]
async fn bodies_are_objects_and_whole_floats_are_integers() {
    let h = memory();
    for (method, path) in [
        (Method::POST, "/campaigns"),
        (Method::POST, "/lists"),
        (Method::POST, "/block-lists"),
        (Method::POST, "/opt-outs"),
        (Method::POST, "/imports"),
        (Method::POST, "/accounts"),
        (Method::POST, "/accounts/acc_x/templates/sync"),
        (Method::PUT, "/contacts/919812340000"),
    ] {
        for body in [
            json!(["x"]),
            json!([null, null]),
            json!("x"),
            json!(5),
            Value::Null,
        ] {
            let (s, v) = h.call(method.clone(), path, Some(body.clone())).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path} {body}: {v}");
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .contains("expected one JSON object"),
                "{method} {path} {body}: {v}"
            );
        }
    }
    let (s, v) = h
        .call(Method::POST, "/contacts", Some(json!("919812340000")))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = h
        .call(
            Method::POST,
            "/contacts",
            Some(json!([{"phone": "919812340000"}])),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["items"][0]["phone"], "919812340000");
    let c = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "Floats", "rate": 5.0, "response_timeout_days": 2.0})),
        )
        .await;
    assert_eq!(c["pacing"]["value"], 5, "{c}");
    assert_eq!(c["response_timeout_days"], 2, "{c}");
    let (s, v) = h
        .call(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "F", "rate": 5.5})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("rate")),
        "{v}"
    );
}

/// The local runner's check of `x-tenant-id` (`LOCAL_TENANTS`): no header, a malformed
/// one or a tenant it does not serve is a 401 in the error shape; the document needs
/// no tenant.
#[tokio::test]
async fn a_runner_with_known_tenants_answers_401_to_anyone_else() {
    use axum::body::Body;
    use axum::http::Request;
    use shared::http::{KnownTenants, TenantId};
    use testkit::memory::ManualClock;
    let api = shared::http::operator::router(common::memory_operator(
        Arc::new(MemoryTable::new()),
        Arc::new(ManualClock::system()),
    ))
    .layer(axum::middleware::from_fn_with_state(
        KnownTenants(Arc::new(vec![TenantId::parse("acme").unwrap()])),
        shared::http::tenant_from_known_header,
    ));
    let get = |path: &str, tenant: Option<&str>| {
        let mut r = Request::builder().uri(path);
        if let Some(t) = tenant {
            r = r.header("x-tenant-id", t);
        }
        r.body(Body::empty()).unwrap()
    };
    for tenant in [
        None,
        Some("globex"),
        Some("SCHEMATHESIS-INVALID-VALUE"),
        Some("a b"),
        Some(""),
    ] {
        for path in ["/contacts", "/campaigns", "/tenant", "/lists/lst_x"] {
            let (s, bytes) = common::send(&api, get(path, tenant)).await;
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} {tenant:?}: {v}");
            assert_eq!(v["error"], "unauthorized", "{v}");
        }
    }
    let (s, _) = common::send(&api, get("/contacts", Some("acme"))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = common::send(&api, get("/openapi.json", None)).await;
    assert_eq!(s, StatusCode::OK);
    // The administrator's routes need the administrator, not a tenant.
    let (s, _) = common::send(&api, get("/admin/tenants/acme", Some("acme"))).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a tenant is not the administrator"
    );
    let admin = Request::builder()
        .uri("/admin/tenants/acme")
        .header(shared::http::ADMIN_HEADER, "true")
        .body(Body::empty())
        .unwrap();
    let (s, _) = common::send(&api, admin).await;
    assert_eq!(s, StatusCode::OK);
}

/// Issue 19, item 2: a body over the API's limit is a 413 in the API's error shape,
/// naming the limit (it was a 400 "Failed to buffer the request body").
#[tokio::test]
async fn a_body_over_the_limit_is_a_413_naming_the_limit() {
    let h = memory();
    let big = "x".repeat(shared::http::error::MAX_BODY_BYTES + 1);
    for path in ["/contacts", "/campaigns", "/lists"] {
        let (s, v) = common::call_raw(
            &h.api,
            common::TENANT,
            Method::POST,
            path,
            "application/json",
            axum::body::Body::from(format!("{{\"name\": \"{big}\"}}")),
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {v}");
        assert_eq!(v["error"], "payload_too_large", "{path}: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("2097152"), "{path}: {message}");
    }
    // Just under the limit it is read (and refused for what it says, not its size).
    let (s, v) = common::call_raw(
        &h.api,
        common::TENANT,
        Method::POST,
        "/lists",
        "application/json",
        axum::body::Body::from(format!(
            "{{\"name\": \"{}\"}}",
            "x".repeat(shared::http::error::MAX_BODY_BYTES - 20)
        )),
    )
    .await;
    assert_ne!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // The document says so on every operator operation that takes a body.
    let doc = shared::http::openapi::served_document();
    let post = &doc["paths"]["/contacts"]["post"]["responses"]["413"];
    assert_eq!(
        post["$ref"], "#/components/responses/PayloadTooLarge",
        "{post}"
    );
}

/// The review of item 2: the routes that read their body as bytes (a reset's confirmation,
/// a template sync's optional WABA) answer the same JSON 413.
#[tokio::test]
async fn a_body_over_the_limit_is_a_413_on_the_routes_that_read_bytes_too() {
    let h = memory();
    let big = format!(
        "{{\"confirm\": true, \"x\": \"{}\"}}",
        "x".repeat(shared::http::error::MAX_BODY_BYTES)
    );
    for path in ["/campaigns/cmp_x/reset", "/accounts/acc_x/templates/sync"] {
        let (s, v) = common::call_raw(
            &h.api,
            common::TENANT,
            Method::POST,
            path,
            "application/json",
            axum::body::Body::from(big.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {v}");
        assert_eq!(v["error"], "payload_too_large", "{path}: {v}");
    }
}
