//! The OpenAPI description of the whole operator API (R8.1), served at `GET /openapi.json`:
//! the campaign and tenant routes (`api::CampaignsApi`), accounts and templates
//! (`templates::TemplatesApi`) and contacts, lists, imports and audiences
//! (`audience::AudienceApi`), merged into one document.

use super::api::CampaignsApi;
use super::audience::AudienceApi;
use super::commands::CommandsApi;
use super::templates::TemplatesApi;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, SecurityRequirement};
use utoipa::OpenApi;

/// Security scheme in AWS: the API Gateway JWT authorizer; the tenant is a claim.
pub const JWT: &str = "jwt";
/// Security scheme in local mode: the tenant in a header.
pub const TENANT_HEADER: &str = "tenant_header";

/// The merged document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = CampaignsApi::openapi();
    doc.merge(TemplatesApi::openapi());
    doc.merge(AudienceApi::openapi());
    doc.merge(CommandsApi::openapi());
    doc.merge(super::blocklists::BlockListsApi::openapi());
    doc.merge(super::hopper_views::HopperViewsApi::openapi());
    doc.merge(super::conversations::ConversationsApi::openapi());
    doc.merge(super::reports::ReportsApi::openapi());
    doc.merge(MetaApi::openapi());
    doc.info = InfoBuilder::new()
        .title("Campaign engine API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Outbound WhatsApp template campaigns: accounts, templates, contacts, lists, \
             campaigns and their lifecycle, statistics and tenant settings. Every answer is \
             JSON; errors are `{\"error\", \"message\", \"field\"}`. Lists paginate with \
             `limit` and `cursor` / `next_cursor`. In AWS the tenant comes from the JWT the \
             API Gateway authorizer verified; locally from the `x-tenant-id` header.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        JWT,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "API Gateway JWT authorizer; the tenant is the `tenant_id` claim (TENANT_CLAIM)",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        TENANT_HEADER,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "x-tenant-id",
            "Local mode only: the tenant (default `demo`)",
        ))),
    );
    doc.security = Some(vec![
        SecurityRequirement::new(JWT, Vec::<String>::new()),
        SecurityRequirement::new(TENANT_HEADER, Vec::<String>::new()),
    ]);
    with_response_examples(doc)
}

/// Gives every operation that shows no response example one built from the examples of
/// the schemas its responses refer to (a list of `Template` shows a template's example),
/// so a reader always sees a concrete answer. Operations with examples keep theirs.
pub fn with_response_examples(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let Ok(mut v) = serde_json::to_value(&doc) else {
        return doc;
    };
    let schemas = v["components"]["schemas"].clone();
    let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let media = || {
                responses
                    .values()
                    .filter_map(|r| r.get("content").and_then(Value::as_object))
                    .flat_map(|c| c.values())
            };
            let has = media().any(|m| {
                m.get("example").is_some_and(|e| !e.is_null())
                    || m.get("examples")
                        .and_then(Value::as_object)
                        .is_some_and(|e| !e.is_empty())
            });
            if has {
                continue;
            }
            // The first response (2xx sort first) whose schema yields an example.
            'responses: for r in responses.values_mut() {
                let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) else {
                    continue;
                };
                for m in content.values_mut() {
                    if let Some(ex) = m.get("schema").and_then(|s| example_of(s, &schemas, 0)) {
                        m["example"] = ex;
                        break 'responses;
                    }
                }
            }
        }
    }
    serde_json::from_value(v).unwrap_or(doc)
}

/// An example value for a JSON schema: its own example, or one assembled from its parts.
fn example_of(schema: &Value, schemas: &Value, depth: usize) -> Option<Value> {
    if depth > 8 {
        return None;
    }
    if let Some(e) = schema.get("example").filter(|e| !e.is_null()) {
        return Some(e.clone());
    }
    if let Some(e) = schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return Some(e.clone());
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/components/schemas/")?;
        return example_of(schemas.get(name)?, schemas, depth + 1);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            let mut merged = serde_json::Map::new();
            for p in parts {
                match example_of(p, schemas, depth + 1) {
                    Some(Value::Object(o)) => merged.extend(o),
                    Some(other) if key != "allOf" => return Some(other),
                    _ => {}
                }
            }
            return (!merged.is_empty()).then_some(Value::Object(merged));
        }
    }
    if let Some(items) = schema.get("items") {
        return example_of(items, schemas, depth + 1).map(|e| Value::Array(vec![e]));
    }
    let props = schema.get("properties")?.as_object()?;
    let obj: serde_json::Map<String, Value> = props
        .iter()
        .filter_map(|(k, p)| example_of(p, schemas, depth + 1).map(|e| (k.clone(), e)))
        .collect();
    (!obj.is_empty()).then_some(Value::Object(obj))
}

fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        document()
            .to_json()
            .expect("the OpenAPI document serialises")
    })
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "meta",
    description = "This OpenAPI 3.1 document. Needs no credentials.",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json",
            example = json!({"openapi": "3.1.0", "info": {"title": "Campaign engine API", "version": "0.1.0"}, "paths": {"/campaigns": {}}})),
    )
)]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// `GET /openapi.json` itself.
#[derive(OpenApi)]
#[openapi(
    paths(serve),
    tags((name = "meta", description = "This description"))
)]
struct MetaApi;
