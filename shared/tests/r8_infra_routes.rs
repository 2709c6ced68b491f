//! R8.1 in AWS: every path of the operator API reaches the api function. API Gateway only
//! forwards paths the SAM template routes, so a route served locally but missing from
//! `infra/template.yaml` would answer 404 in production while every local test passes.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// The `Path:` values of the template's HttpApi events.
fn routed_paths() -> BTreeSet<String> {
    let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let text = std::fs::read_to_string(&template).expect("infra/template.yaml");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Path:"))
        .map(|p| p.trim().to_owned())
        .collect()
}

/// Whether an API Gateway route pattern (`/a`, `/a/{proxy+}`) matches an OpenAPI path.
fn routes(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix("/{proxy+}") {
        Some(prefix) => path.starts_with(&format!("{prefix}/")),
        None => pattern == path,
    }
}

#[test]
fn r8_1_every_documented_api_path_is_routed_by_the_sam_template() {
    let routed = routed_paths();
    assert!(routed.contains("/campaigns"), "template parsed: {routed:?}");
    let doc = shared::http::openapi::document();
    let missing: Vec<String> = doc
        .paths
        .paths
        .keys()
        .filter(|p| !routed.iter().any(|r| routes(r, p)))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "paths the api serves but API Gateway would not forward: {missing:?}"
    );
}
