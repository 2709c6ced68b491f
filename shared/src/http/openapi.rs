//! The OpenAPI description of the whole operator API (R8.1), served at `GET /openapi.json`:
//! the campaign and tenant routes (`api::CampaignsApi`), accounts and templates
//! (`templates::TemplatesApi`) and contacts, lists, imports and audiences
//! (`audience::AudienceApi`), merged into one document ([`document`]). What is served
//! ([`served_document`]) adds the routes beside it (webhooks, the local runner's) and the
//! input rules the derive macros cannot state (shared 400/401/403 answers, phone patterns,
//! a JSON query parameter, ...), so that the document says exactly what the code accepts.

use super::api::CampaignsApi;
use super::audience::AudienceApi;
use super::commands::CommandsApi;
use super::templates::TemplatesApi;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, SecurityRequirement};
use utoipa::OpenApi;

/// Security scheme in AWS: the API Gateway JWT authorizer; the tenant is a claim.
pub const JWT: &str = "jwt";
/// Security scheme in local mode: the tenant in a header.
pub const TENANT_HEADER: &str = "tenant_header";
/// Security scheme of the `/admin` routes in local mode: `x-admin: true`.
pub const ADMIN_HEADER: &str = "admin_header";

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
             API Gateway authorizer verified; locally from the `x-tenant-id` header. A \
             request the code cannot read (bad JSON, a field of the wrong type or unknown, a \
             bad query parameter) is a 400 naming the field; one it can read but that breaks \
             a rule (a number invalid for its country, an end before a start, an unknown \
             list) is a 422 naming the field.",
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
            super::TENANT_HEADER,
            "Local mode only: the tenant the request acts for. With `LOCAL_TENANTS` set the \
             runner serves only those tenants and answers 401 without this header or with \
             another tenant; without it a missing header means `demo`.",
        ))),
    );
    components.add_security_scheme(
        ADMIN_HEADER,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            super::ADMIN_HEADER,
            "Local mode only: `true` makes the request the platform administrator's, for the \
             /admin routes (in AWS: a JWT with the ADMIN_SCOPE scope, default \
             `campaigns/admin`).",
        ))),
    );
    // Either one: the header in local mode, the token in AWS.
    doc.security = Some(vec![
        SecurityRequirement::new(TENANT_HEADER, Vec::<String>::new()),
        SecurityRequirement::new(JWT, Vec::<String>::new()),
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

/// A phone number as the parser reads it (`domain::phone`): digits with spaces, dashes,
/// dots, parentheses or slashes between them and an optional leading `+`; at most 15
/// digits, else 422.
pub const PHONE_PATTERN: &str = r"^\+?[0-9 ()./-]*[0-9][0-9 ()./-]*$";

/// The document `GET /openapi.json` serves: [`document`], the routes served beside the
/// operator API (`other_routes`), and the input rules of [`with_input_rules`].
pub fn served_document() -> Value {
    let mut doc = document();
    doc.merge(super::other_routes::OtherRoutesApi::openapi());
    doc.merge(super::console::ConsoleApi::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        super::other_routes::META_SIGNATURE,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "x-hub-signature-256",
            "`sha256=` and the hex HMAC-SHA256 of the raw body under the Meta app secret",
        ))),
    );
    components.add_security_scheme(
        super::other_routes::KALEYRA_TOKEN,
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "token",
            "The callback token of the SID named by `sid` (or the `X-Kaleyra-Token` header)",
        ))),
    );
    components.add_security_scheme(
        super::other_routes::TWILIO_SIGNATURE,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "x-twilio-signature",
            "Base64 HMAC-SHA1, under the Twilio account's auth token, of the URL called and the sorted POST parameters",
        ))),
    );
    let mut v =
        serde_json::to_value(with_response_examples(doc)).expect("the OpenAPI document serialises");
    with_input_rules(&mut v);
    v
}

/// A response shared by many operations, and where it applies.
fn shared_responses() -> Value {
    let error = |description: &str, example: Value| {
        json!({
            "description": description,
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"},
                "example": example
            }}
        })
    };
    json!({
        "BadRequest": error(
            "The request cannot be read: a body that is not one JSON object of the documented \
             fields (malformed JSON, an array, a field of the wrong type, an unknown field), \
             or a query or path parameter that cannot be its type or is out of range; `field` \
             names it when one is at fault",
            json!({"error": "bad_request", "message": "invalid JSON body: unknown field `nmae`, expected one of `phone`, `mobile`, `name`, `email`, `tags`, `valued_tags`, `fields`", "field": "nmae"}),
        ),
        "Unauthorized": error(
            "No tenant in the credentials: in AWS no valid token; locally no `x-tenant-id` \
             header, or (with `LOCAL_TENANTS`) a tenant the runner does not serve",
            json!({"error": "unauthorized", "message": "no tenant in the request's credentials"}),
        ),
        "PayloadTooLarge": error(
            "The body is over the operator API's limit of 2 MB (2097152 bytes); `message` \
             names the limit",
            json!({"error": "payload_too_large", "message": super::error::body_too_large().message}),
        ),
        "CampaignsDisabled": error(
            "Campaigns are disabled for the tenant (R1.8): every /campaigns route answers 403",
            json!({"error": "forbidden", "message": "campaigns are disabled for tenant acme; the platform's administrator can enable them (PUT /admin/tenants/acme)"}),
        ),
    })
}

/// The input rules the derive macros cannot state, written into the document:
/// - every operation that reads a body or parameters can answer the shared 400, every
///   one behind the tenant's credentials the shared 401, every `/campaigns` one the 403;
/// - phone path parameters have the parser's pattern and document its 422;
/// - rules of single fields (a step's characters, a reset's `confirm: true`, non-blank
///   tag and field names) and the import's `mapping`, a JSON object in the query.
pub fn with_input_rules(doc: &mut Value) {
    let components = &mut doc["components"];
    let shared = shared_responses();
    let responses = components["responses"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut merged = shared.as_object().cloned().unwrap_or_default();
    merged.extend(responses);
    components["responses"] = Value::Object(merged);
    field_rules(&mut components["schemas"]);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            operation_rules(path, op);
        }
    }
}

fn shared_response(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn operation_rules(path: &str, op: &mut Value) {
    let Some(responses) = op.get("responses").and_then(Value::as_object).cloned() else {
        return;
    };
    let mut responses = responses;
    let reads_input = op.get("requestBody").is_some()
        || op
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty());
    // Operations with their own `security` (webhooks, the local runner's) need no tenant.
    let needs_tenant = op.get("security").is_none();
    if reads_input && path != "/openapi.json" {
        responses
            .entry("400")
            .or_insert_with(|| shared_response("BadRequest"));
    }
    if needs_tenant && path != "/openapi.json" {
        responses
            .entry("401")
            .or_insert_with(|| shared_response("Unauthorized"));
    }
    // Operator routes with a body read at most `MAX_BODY_BYTES` of it.
    if op.get("requestBody").is_some() && needs_tenant {
        responses
            .entry("413")
            .or_insert_with(|| shared_response("PayloadTooLarge"));
    }
    if path == "/campaigns" || path.starts_with("/campaigns/") {
        responses
            .entry("403")
            .or_insert_with(|| shared_response("CampaignsDisabled"));
    }
    let op_id = op
        .get("operationId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut phone_in_path = false;
    for p in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let place = p
            .get("in")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // An empty query parameter is the same as an absent one (`http::Query`), but for
        // the hopper views' limit, cursor and filters, which they refuse
        // (`http::QueryAsGiven`).
        let as_given = matches!(op_id.as_deref(), Some("open" | "history" | "entries"))
            && matches!(name.as_str(), "limit" | "cursor" | "reason" | "disposition");
        if place == "query" && !as_given && p.get("required") != Some(&Value::Bool(true)) {
            p["allowEmptyValue"] = Value::Bool(true);
        }
        match (place.as_str(), name.as_str()) {
            ("path", "phone") => {
                phone_in_path = true;
                p["schema"] = json!({"type": "string", "pattern": PHONE_PATTERN});
            }
            // `POST /contacts/import?mapping=`: a JSON object of column -> target.
            ("query", "mapping") => {
                if let Some(p) = p.as_object_mut() {
                    // An empty one is absent too, but with `content` that would read as
                    // the JSON text `""`.
                    p.remove("allowEmptyValue");
                    p.remove("schema");
                    p.insert(
                        "content".into(),
                        json!({"application/json": {"schema": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "example": {"Mobile No": "phone", "Town": "tag:city", "Internal id": "ignore"}
                        }}}),
                    );
                }
            }
            _ => {}
        }
    }
    if phone_in_path {
        responses.entry("422").or_insert_with(|| {
            json!({
                "description": "The phone is not a number: a character the parser does not \
                    take, no digits, more than 15 digits or a doubled 00 prefix; `field` is `phone`",
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorBody"},
                    "example": {"error": "invalid", "message": "phone: 'abc' contains 'a'; use digits, spaces, dashes and a leading '+'", "field": "phone"}
                }}
            })
        });
    }
    op["responses"] = Value::Object(sorted(responses));
    // `POST /accounts/{id}/templates/sync` reads an empty body as `{}`.
    if op.get("operationId").and_then(Value::as_str) == Some("sync_templates") {
        op["requestBody"]["required"] = Value::Bool(false);
    }
}

/// Status codes in order, as the derive macros write them.
fn sorted(m: serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mut entries: Vec<(String, Value)> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// What one field of a request body must be, beyond its type.
fn field_rules(schemas: &mut Value) {
    // A step name as `reports::check_step_name` takes it: 1 to 64 characters once trimmed,
    // no `;` and no control character (C0, DEL, C1).
    const NOT_STEP: &str = r";\u0000-\u001f\u007f-\u009f";
    let step = &mut schemas["StepRequest"]["properties"]["step"];
    step["minLength"] = json!(1);
    step["maxLength"] = json!(64);
    step["pattern"] = json!(format!("^[^{NOT_STEP}]*[^\\s{NOT_STEP}][^{NOT_STEP}]*$"));
    schemas["ResetRequest"]["properties"]["confirm"]["enum"] = json!([true]);
    // Tag and field names are never blank (422 naming `valued_tags.<key>`).
    let names = json!({"minLength": 1, "pattern": "\\S"});
    for (schema, field) in [
        ("NewContact", "valued_tags"),
        ("NewContact", "fields"),
        ("Segment", "valued_tags"),
    ] {
        schemas[schema]["properties"][field]["propertyNames"] = names.clone();
    }
    // `POST /contacts/{phone}/recontact` names its account (422 when it does not).
    let recontact = &mut schemas["RecontactRequest"];
    recontact["properties"]["account_id"] = json!({
        "type": "string",
        "minLength": 1,
        "description": "The provider account (business number) whose recontact template is sent."
    });
    let required = recontact["required"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !required.contains(&json!("account_id")) {
        let mut r = required;
        r.push(json!("account_id"));
        recontact["required"] = Value::Array(r);
    }
    schemas["NewOptOut"]["properties"]["phone"]["pattern"] = json!(PHONE_PATTERN);
}

fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| served_document().to_string())
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
