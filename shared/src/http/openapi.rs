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

/// Example values shared by the path descriptions.
pub mod examples {
    use serde_json::{json, Value};

    pub const CAMPAIGN_ID: &str = "cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8";

    pub fn new_campaign() -> Value {
        json!({
            "name": "Spring offer",
            "account_id": "acc_0193a6ef11aa7c3e9d8b2f4a6c1e0d57",
            "template": {"name": "spring_offer", "language": "en"},
            "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}],
            "pacing": {"unit": "messages_per_second", "value": 20},
            "response_timeout_days": 2,
            "duplicate_window_days": 3,
            "close_on_quick_reply": true,
            "start_at": "2026-11-22T09:00:00Z",
            "end_at": "2026-11-29T21:00:00Z",
            "calling_hours": {"start": "09:00", "end": "20:00", "timezone": "Asia/Kolkata"},
            "reply_route": "queue:spring-sales",
            "block_lists": ["bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f"],
            "notes": "Spring catalogue, VIP list first"
        })
    }

    pub fn campaign_view(status: &str) -> Value {
        let (sent, target) = match status {
            "DRAFT" | "READY" | "SCHEDULED" => (0, 1200),
            "COMPLETED" => (1200, 1200),
            _ => (480, 1200),
        };
        json!({
            "id": CAMPAIGN_ID,
            "tenant": "acme",
            "name": "Spring offer",
            "channel": "whatsapp",
            "account_id": "acc_0193a6ef11aa7c3e9d8b2f4a6c1e0d57",
            "template": {"name": "spring_offer", "language": "en"},
            "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}],
            "notes": "Spring catalogue, VIP list first",
            "pacing": {"unit": "messages_per_second", "value": 20},
            "response_timeout_days": 2,
            "duplicate_window_days": 3,
            "include_active_interactions": false,
            "close_on_quick_reply": true,
            "start_at": "2026-11-22T09:00:00Z",
            "end_at": "2026-11-29T21:00:00Z",
            "calling_hours": {"start": "09:00", "end": "20:00", "timezone": "Asia/Kolkata"},
            "display_timezone": "Asia/Kolkata",
            "reply_route": "queue:spring-sales",
            "block_lists": ["bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f"],
            "status": status,
            "hopper_shards": 16,
            "created_at": "2026-11-21T09:00:00Z",
            "updated_at": "2026-11-21T09:05:00Z",
            "version": 4,
            "progress": {"sent": sent, "target": target, "percent": (sent as f64 * 1000.0 / target as f64).round() / 10.0}
        })
    }

    pub fn test_view() -> Value {
        let mut v = campaign_view("RUNNING");
        v["id"] = json!("cmp_0193a6f5d1e2a3b4c5d6e7f8091a2b3c");
        v["name"] = json!("Spring offer (test)");
        v["test_of"] = json!(CAMPAIGN_ID);
        v["start_at"] = Value::Null;
        v["end_at"] = Value::Null;
        v["progress"] = json!({"sent": 0, "target": 2, "percent": 0.0});
        v
    }

    pub fn tenant(enabled: bool) -> Value {
        json!({"id": "acme", "campaigns_enabled": enabled, "timezone": "Asia/Kolkata", "opt_out_keywords": ["STOP", "STOPALL", "UNSUBSCRIBE", "STOP PROMOTIONS"], "updated_at": "2026-11-21T09:00:00Z", "version": 2})
    }

    pub fn not_found() -> Value {
        json!({"error": "not_found", "message": format!("campaign '{CAMPAIGN_ID}' not found")})
    }

    pub fn forbidden() -> Value {
        json!({"error": "forbidden", "message": "campaigns are disabled for tenant acme; an administrator can enable them with PUT /tenant"})
    }

    /// A reset or retry (R4.9) and its progress.
    pub fn operation(kind: &str, status: &str, campaign_status: &str) -> Value {
        let done = status == "DONE";
        json!({
            "id": "op_0193a7b2c4d5e6f708192a3b4c5d6e7f",
            "campaign_id": CAMPAIGN_ID,
            "kind": kind,
            "status": status,
            "campaign_status": campaign_status,
            "requests": 1,
            "requested_at": "2026-11-23T10:00:00Z",
            "updated_at": if done { "2026-11-23T10:02:00Z" } else { "2026-11-23T10:00:00Z" },
            "finished_at": if done { json!("2026-11-23T10:02:00Z") } else { Value::Null },
            "progress": {
                "shards_done": if done { 16 } else { 0 }, "shards": 16,
                "examined": if done { 1200 } else { 0 }, "changed": if done { 37 } else { 0 },
                "in_flight": 0, "percent": if done { 100.0 } else { 0.0 }
            },
            "message": null
        })
    }

    pub fn conflict(action: &str, status: &str) -> Value {
        json!({"error": "conflict", "message": format!("cannot {action} campaign {CAMPAIGN_ID} while it is {status}")})
    }
}
