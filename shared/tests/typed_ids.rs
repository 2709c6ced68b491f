//! Ids are parsed where they come in: an id outside the id alphabet in a path is a JSON
//! 404 naming what was not found (it cannot exist), a phone or list id in a path is not
//! held to that alphabet, and the OpenAPI document gives the pattern the server holds
//! campaign and account ids to.

use axum::http::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use testkit::harness::Spawn;
use testkit::memory::MemoryTable;

#[tokio::test]
async fn ids_outside_the_alphabet_are_not_found_in_the_json_error_shape() {
    let h = Spawn::new(Arc::new(MemoryTable::new())).build();
    for path in [
        "/campaigns/cmp%23x",
        "/campaigns/a%20b/stats",
        "/accounts/acc%2Fx",
    ] {
        let (s, v) = h.call(Method::GET, path, None).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}: {v}"
        );
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("not found"), "{path}: {message}");
        assert!(!message.starts_with("Invalid URL"), "{path}: {message}");
    }
    // A well-formed id that does not exist is the same 404.
    let (s, _) = h.call(Method::GET, "/campaigns/cmp_missing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[test]
fn the_document_gives_the_id_pattern_of_campaign_and_account_parameters() {
    let doc: Value =
        serde_json::from_str(&shared::http::openapi::document().to_json().unwrap()).unwrap();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for op in item.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let d = p["description"].as_str().unwrap_or_default();
                if p["in"] == "path" && (d == "Campaign id" || d == "Account id") {
                    seen += 1;
                    assert_eq!(
                        p["schema"]["pattern"], "^[A-Za-z0-9_-]{1,128}$",
                        "{path} {}",
                        p["name"]
                    );
                }
            }
        }
    }
    assert!(seen >= 20, "{seen}");
}
