//! R8.1/R8.3 in AWS: every path of the operator API reaches the api function, and the
//! template deploys every function. API Gateway only forwards paths the SAM template
//! routes, so a route served locally but missing from `infra/template.yaml` would answer
//! 404 in production while every local test passes.

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

/// R8.3: the SAM template deploys every Lambda package of the workspace (each
/// `functions/*` except the local runner is built as a `Binary` of a function resource),
/// with the data it needs: the table, the queues, the bus and the schedules.
#[test]
fn r8_3_template_deploys_every_function_and_the_resources_they_use() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("infra/template.yaml")).unwrap();
    let binaries: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary:"))
        .map(|b| b.trim().to_owned())
        .collect();
    let packages: BTreeSet<String> = std::fs::read_dir(root.join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "local")
        .collect();
    assert_eq!(binaries, packages, "every function package is deployed");
    for resource in [
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Events::EventBus",
        "AWS::Scheduler::ScheduleGroup",
        "AWS::Serverless::HttpApi",
    ] {
        assert!(text.contains(resource), "the template declares {resource}");
    }
}
