//! Routes for contacts, lists, segments and imports (R2), and their OpenAPI description
//! ([`AudienceApi`]).
//!
//! Everything runs on the operator API's state ([`Audience`]) except `POST /imports`, which
//! also needs the object store for its upload URL: the composition root provides it with
//! [`with_object_store`] (S3 in Lambda, the in-memory store locally); without one the
//! route answers 503.

use super::error::{from_body, kind_of, ApiError, ErrorBody, JsonBody, JsonValue};
use super::examples as ex;
use super::paging::{Page100, Page1000, Paging};
use super::respond::{created, ok, R};
use super::{Path, Query, TenantId};
use crate::app::audience::Audience;
use crate::app::campaigns::AttachResult;
use crate::app::commands::{Attached, Commands, OperationView};
use crate::app::import::{ImportService, ImportTuning, ImportView, UploadTicket, INLINE_MAX_BYTES};
use crate::app::reach::{Reach, ReachRequest};
use crate::app::Operator;
use crate::domain::contact::{Contact, ContactList, NewContact, Segment};
use crate::domain::ids::CampaignId;
use crate::domain::import::{Column, ColumnMap, Import, ImportSource, ImportStatus, RowError};
use crate::domain::phone::PhoneNumber;
use crate::ports::ObjectStore;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

type S = axum::extract::State<Arc<Audience>>;

pub fn routes() -> Router<Operator> {
    Router::new()
        .route("/contacts", post(upsert_contacts).get(list_contacts))
        .route("/contacts/import", post(import_inline))
        .route(
            "/contacts/{phone}",
            get(get_contact).put(put_contact).delete(delete_contact),
        )
        .route("/imports", post(create_import))
        .route("/imports/{id}", get(get_import))
        .route("/imports/{id}/errors", get(import_errors))
        .route("/lists", post(create_list).get(list_lists))
        .route("/audience/count", post(count_reach))
        .route("/lists/{id}", get(get_list))
        .route("/lists/{id}/members", post(add_members).get(list_members))
        .route("/campaigns/{id}/lists", post(attach_list))
        .route("/campaigns/{id}/segments", post(attach_segment))
}

/// Gives `POST /imports` its object store (S3, or the local runner's in-memory one).
pub fn with_object_store(router: Router, objects: Arc<dyn ObjectStore>) -> Router {
    router.layer(Extension(objects))
}

async fn object_store(
    given: Option<Extension<Arc<dyn ObjectStore>>>,
) -> Result<Arc<dyn ObjectStore>, ApiError> {
    given.map(|Extension(o)| o).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "uploads are not configured here (IMPORT_BUCKET is unset); \
                 POST /contacts/import takes CSV files up to {INLINE_MAX_BYTES} bytes"
            ),
        )
    })
}

// ---- documentation types ----

/// One contact, or an array of at most 1000.
/// One contact or an array of them (the schema; the handler reads each shape itself so
/// an error names the field, which an untagged enum's "no variant matched" would not).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ContactsInput {
    Many(Vec<NewContact>),
    One(NewContact),
}

/// `{"items": [...]}` of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactItems {
    pub items: Vec<Contact>,
}

/// What `POST /contacts` answers: the contact for an object, `{"items": [...]}` for an
/// array (documentation only).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ContactsCreated {
    One(Box<Contact>),
    Many(ContactItems),
}

/// A page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPage {
    pub items: Vec<Contact>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A list member.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub phone: PhoneNumber,
}

/// A page of a list's members, in phone order.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<Member>,
    pub next_cursor: Option<String>,
}

/// A page of an import's invalid rows, by line.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowErrorPage {
    pub items: Vec<RowError>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "VIPs"}))]
#[serde(deny_unknown_fields)]
pub struct NewList {
    /// Required; blank is refused (422).
    #[schema(value_type = String, required = true, min_length = 1)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"phones": ["919812345678", "+91 98123 45679"]}))]
#[serde(deny_unknown_fields)]
pub struct Members {
    /// Phone numbers of existing contacts, as typed or as digits.
    pub phones: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    /// Contacts added (adding one twice is harmless).
    pub added: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"list_id": "lst_01j…"}))]
#[serde(deny_unknown_fields)]
pub struct Attach {
    pub list_id: String,
}

/// `POST /imports`: where the contacts go and, optionally, how columns map.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"list_id": "lst_01j…", "mapping": {"Mobile No": "phone", "Town": "tag:city", "Internal id": "ignore"}}))]
#[serde(deny_unknown_fields)]
pub struct NewImport {
    /// Add every imported contact to this list.
    pub list_id: Option<String>,
    /// Column name -> `phone` | `mobile` | `name` | `email` | `tags` | `tag:<key>` |
    /// `field:<name>` | `ignore`; columns not named follow the header rules.
    pub mapping: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InlineImport {
    /// Add every imported contact to this list.
    pub list_id: Option<String>,
    /// An explicit column mapping as a JSON object of column -> target (URL-encoded), as
    /// in `POST /imports`; text that is not a JSON object of strings is a 400 naming
    /// `mapping`, a target that is not one is a 422.
    pub mapping: Option<String>,
}

// ---- contacts ----

#[utoipa::path(
    post, path = "/contacts", tag = "contacts",
    description = "Creates or updates contacts by phone. What a request gives replaces the \
        stored value and what it leaves out stays: `name`, `email`, `mobile` are replaced \
        (`\"\"` clears), `tags` replaces the set, `valued_tags` and `fields` merge key by key \
        (`null` or `\"\"` removes a key). Phone numbers may be typed with '+', spaces, dashes \
        or a leading 00 and are stored as international digits; a number libphonenumber \
        deems invalid for its country is a 422 naming the field, except one with fewer than \
        five digits: it is stored flagged `invalid_phone` and never sent to (R4.4). If only phone or mobile is \
        given the other is copied from it. A body with an array validates every contact \
        before storing any.",
    request_body(content = ContactsInput, examples(
        ("one" = (value = json!({"phone": "+91 98123 45678", "name": "Asha", "tags": ["vip"],
            "valued_tags": {"city": "Pune"}, "fields": {"code": "SPRING1"}}))),
        ("many" = (value = json!([{"phone": "+91 98123 45678", "name": "Asha"},
            {"mobile": "0044 7911 123456", "name": "Ben"}])))
    )),
    responses(
        (status = 201, description = "The contact (for one) or `{\"items\": [...]}` (for an array)", body = ContactsCreated),
        (status = 422, description = "A field breaks a rule; `field` names it (`[2].phone` in an array)", body = ErrorBody,
            example = json!({"error": "invalid", "message": "phone: +91 12345 is not a valid number for IN (country code +91)", "field": "phone"})),
    )
)]
async fn upsert_contacts(State(a): S, t: TenantId, JsonValue(b): JsonValue) -> R {
    match b {
        Value::Array(_) => {
            let cs: Vec<NewContact> = from_body(b)?;
            created(ContactItems {
                items: a.upsert_contacts(&t, cs).await?,
            })
        }
        Value::Object(_) => created(a.upsert_contact(&t, None, from_body(b)?).await?),
        other => Err(ApiError::bad_request(
            None,
            format!(
                "invalid JSON body: expected a contact (an object) or an array of contacts, found {}",
                kind_of(&other)
            ),
        )),
    }
}

#[utoipa::path(
    get, path = "/contacts", tag = "contacts",
    params(Page100),
    responses((status = 200, description = "A page of the tenant's contacts", body = ContactPage))
)]
async fn list_contacts(State(a): S, t: TenantId, Query(p): Query<Paging>) -> R {
    let limit = p.limit(50, 100)?;
    let (items, next_cursor) = a.list_contacts(&t, limit, p.cursor).await?;
    ok(ContactPage { items, next_cursor })
}

#[utoipa::path(
    get, path = "/contacts/{phone}", tag = "contacts",
    params(("phone" = String, Path, description = "The phone number, e.g. 919812345678")),
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 404, description = "No such contact (of this tenant)", body = ErrorBody,
            example = json!({"error": "not_found", "message": "contact '91********78' not found"})),
    )
)]
async fn get_contact(State(a): S, t: TenantId, Path(phone): Path<String>) -> R {
    ok(a.get_contact(&t, &phone).await?)
}

#[utoipa::path(
    put, path = "/contacts/{phone}", tag = "contacts",
    description = "Creates or updates the contact with this phone; same rules as POST /contacts.",
    params(("phone" = String, Path, description = "The phone number, e.g. 919812345678")),
    request_body(content = NewContact, example = json!({"name": "Asha K", "fields": {"code": "SPRING2", "old": null}})),
    responses(
        (status = 200, description = "The contact after the change", body = Contact),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    )
)]
async fn put_contact(
    State(a): S,
    t: TenantId,
    Path(phone): Path<String>,
    JsonBody(b): JsonBody<NewContact>,
) -> R {
    ok(a.upsert_contact(&t, Some(&phone), b).await?)
}

#[utoipa::path(
    delete, path = "/contacts/{phone}", tag = "contacts",
    description = "Deletes the contact, its list memberships and its tag index entries. \
        Entries already in a campaign's hopper stay (they are that campaign's record).",
    params(("phone" = String, Path, description = "The phone number")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such contact", body = ErrorBody),
    )
)]
async fn delete_contact(State(a): S, t: TenantId, Path(phone): Path<String>) -> R {
    a.delete_contact(&t, &phone).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- imports ----

fn csv_content_type(headers: &HeaderMap) -> bool {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/csv")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        ct.as_str(),
        "text/csv"
            | "text/plain"
            | "application/csv"
            | "application/vnd.ms-excel"
            | "application/octet-stream"
    )
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "an inline import takes at most {INLINE_MAX_BYTES} bytes; for larger files \
             POST /imports and upload the file to the URL it returns"
        ),
    )
}

#[utoipa::path(
    post, path = "/contacts/import", tag = "imports",
    description = "Imports a CSV file of at most 1 MB sent as the body, inside the request. \
        The header row maps columns: phone, mobile, name, email, tags (separated by ';'), \
        tag:<key> for valued tags, anything else a custom field (or give `mapping`). \
        Each row is upserted like POST /contacts with empty cells left out; invalid rows \
        are reported by line and the valid ones imported. Larger files: POST /imports.",
    params(InlineImport),
    request_body(content = String, content_type = "text/csv",
        example = "phone,name,tags,tag:city,code\n+91 98123 45678,Asha,vip;gold,Pune,SPRING1\n+91 12345,Bad,,,\n"),
    responses(
        (status = 201, description = "The finished import with its counts and first errors", body = ImportView,
            example = json!({"id": "imp_01j…", "tenant": "acme", "source": "inline", "status": "COMPLETED",
                "rows": 2, "imported": 1, "invalid": 1, "errors_stored": 1,
                "errors": [{"line": 3, "reason": "phone: +9112345 is not a valid number for IN (country code +91)"}]})),
        (status = 413, description = "More than 1 MB: use POST /imports", body = ErrorBody),
        (status = 415, description = "Not a CSV body", body = ErrorBody),
        (status = 422, description = "The header maps no phone column, or a bad mapping or list", body = ErrorBody,
            example = json!({"error": "invalid", "message": "header: no phone or mobile column (the first row must be a header naming the columns)", "field": "header"})),
    )
)]
async fn import_inline(
    State(a): S,
    t: TenantId,
    Query(q): Query<InlineImport>,
    headers: HeaderMap,
    body: Body,
) -> R {
    if !csv_content_type(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as text/csv",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > INLINE_MAX_BYTES) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, INLINE_MAX_BYTES)
        .await
        .map_err(|_| too_large())?;
    let mapping = match q.mapping.as_deref() {
        None | Some("") => None,
        Some(m) => Some(serde_json::from_str(m).map_err(|e| {
            ApiError::bad_request(
                Some("mapping".into()),
                format!("mapping must be a JSON object of column -> target: {e}"),
            )
        })?),
    };
    created(a.import_inline(&t, bytes, q.list_id, mapping).await?)
}

#[utoipa::path(
    post, path = "/imports", tag = "imports",
    description = "Starts an import of a large CSV file: answers the import and a presigned \
        URL; PUT the file there (content-type text/csv) within an hour. The upload starts \
        the importer, which streams the file, so a million rows are fine. Follow it with \
        GET /imports/{id}.",
    request_body(content = NewImport),
    responses(
        (status = 201, description = "The import and where to upload the file", body = UploadTicket,
            example = json!({"import": {"id": "imp_01j…", "tenant": "acme", "source": "upload",
                "status": "AWAITING_UPLOAD", "list_id": "lst_01j…", "rows": 0, "imported": 0, "invalid": 0},
                "upload_url": "https://campaigns-imports.s3.amazonaws.com/imports/acme/imp_01j….csv?X-Amz-Signature=…",
                "method": "PUT", "headers": {"content-type": "text/csv"}, "expires_at": "2026-11-21T10:00:00Z"})),
        (status = 422, description = "Unknown list or bad mapping", body = ErrorBody),
        (status = 503, description = "No object store configured", body = ErrorBody),
    )
)]
async fn create_import(
    State(a): S,
    t: TenantId,
    objects: Option<Extension<Arc<dyn ObjectStore>>>,
    JsonBody(b): JsonBody<NewImport>,
) -> R {
    let svc = ImportService {
        table: a.table.clone(),
        objects: object_store(objects).await?,
        clock: a.clock.clone(),
        tuning: ImportTuning::default(),
    };
    created(svc.create_upload(&t, b.list_id, b.mapping).await?)
}

#[utoipa::path(
    get, path = "/imports/{id}", tag = "imports",
    params(("id" = String, Path, description = "Import id")),
    responses(
        (status = 200, description = "Status, counts, checkpoint and the first invalid rows", body = ImportView),
        (status = 404, description = "No such import", body = ErrorBody),
    )
)]
async fn get_import(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.get_import(&t, &id).await?)
}

#[utoipa::path(
    get, path = "/imports/{id}/errors", tag = "imports",
    params(("id" = String, Path, description = "Import id"), Page1000),
    responses(
        (status = 200, description = "A page of invalid rows by line (the first 1000 are kept; `invalid` counts all)", body = RowErrorPage),
        (status = 404, description = "No such import", body = ErrorBody),
    )
)]
async fn import_errors(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> R {
    let limit = p.limit(100, 1000)?;
    let (items, next_cursor) = a.import_errors(&t, &id, limit, p.cursor).await?;
    ok(RowErrorPage { items, next_cursor })
}

// ---- lists ----

#[utoipa::path(
    post, path = "/lists", tag = "lists",
    request_body = NewList,
    responses(
        (status = 201, description = "The list", body = ContactList),
        (status = 422, description = "No name", body = ErrorBody),
    )
)]
async fn create_list(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewList>) -> R {
    created(a.create_list(&t, b.name).await?)
}

#[utoipa::path(
    post, path = "/audience/count", tag = "audience",
    description = "How many distinct contacts some lists and/or a segment would put in a \
        campaign's hopper: what the campaign form shows before saving. Block lists, the \
        opt-out list and the duplicate window are judged at send time, so they are not \
        subtracted. The count walks for at most 5 s and 200,000 contacts; beyond that it \
        answers what it counted with `exact: false` (at least that many).",
    request_body = ReachRequest,
    responses(
        (status = 200, description = "The count", body = Reach,
            example = json!({"contacts": 1200, "exact": true})),
        (status = 404, description = "A list that does not exist", body = ErrorBody,
            example = json!({"error": "not_found", "message": "list 'lst_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f' not found"})),
        (status = 422, description = "No list and no segment, more than 20 lists, or an empty segment; `field` names it", body = ErrorBody,
            example = json!({"error": "invalid", "field": "list_ids", "message": "list_ids: name a list or a segment"})),
    )
)]
async fn count_reach(State(a): S, t: TenantId, JsonBody(b): JsonBody<ReachRequest>) -> R {
    ok(a.count_reach(&t, b).await?)
}

/// A page of lists, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactListPage {
    pub items: Vec<ContactList>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/lists", tag = "lists",
    params(Page100),
    responses((status = 200, description = "A page of the tenant's lists, oldest first", body = ContactListPage,
        example = json!({"items": [{"id": "lst_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f", "tenant": "acme", "name": "VIPs", "created_at": "2026-11-21T09:00:00Z"}], "next_cursor": null})))
)]
async fn list_lists(State(a): S, t: TenantId, Query(p): Query<Paging>) -> R {
    let limit = p.limit(50, 100)?;
    let (items, next_cursor) = a.list_lists(&t, limit, p.cursor).await?;
    ok(ContactListPage { items, next_cursor })
}

#[utoipa::path(
    get, path = "/lists/{id}", tag = "lists",
    params(("id" = String, Path, description = "List id")),
    responses(
        (status = 200, description = "The list", body = ContactList),
        (status = 404, description = "No such list", body = ErrorBody),
    )
)]
async fn get_list(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.get_list(&t, &id).await?)
}

#[utoipa::path(
    post, path = "/lists/{id}/members", tag = "lists",
    params(("id" = String, Path, description = "List id")),
    request_body = Members,
    responses(
        (status = 200, description = "How many were added", body = Added, example = json!({"added": 2})),
        (status = 404, description = "No such list", body = ErrorBody,
            example = json!({"error": "not_found", "message": "list 'lst_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f' not found"})),
        (status = 422, description = "A phone is not a number or names no contact; `field` is `phones[i]`", body = ErrorBody),
    )
)]
async fn add_members(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Members>,
) -> R {
    ok(Added {
        added: a.add_list_members(&t, &id, b.phones).await?,
    })
}

#[utoipa::path(
    get, path = "/lists/{id}/members", tag = "lists",
    params(("id" = String, Path, description = "List id"), Page1000),
    responses(
        (status = 200, description = "A page of members in phone order", body = MemberPage,
            example = json!({"items": [{"phone": "919812345678"}], "next_cursor": null})),
        (status = 404, description = "No such list", body = ErrorBody),
    )
)]
async fn list_members(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> R {
    let limit = p.limit(100, 1000)?;
    let (phones, next_cursor) = a.list_members(&t, &id, limit, p.cursor).await?;
    ok(MemberPage {
        items: phones.into_iter().map(|phone| Member { phone }).collect(),
        next_cursor,
    })
}

// ---- audience ----

/// An attach's answer: 200 with what was added when it finished within the request, or 202
/// with the `attach` operation the sweeper carries on.
fn attached(a: Attached) -> R {
    match a {
        Attached::Done(result) => ok(result),
        Attached::Continues(op) => super::commands::accepted(op),
    }
}

#[utoipa::path(
    post, path = "/campaigns/{id}/lists", tag = "audience",
    description = concat!("Puts the list's contacts into the campaign's hopper as FRESH. A contact \
        already there keeps its one entry; its snapshot of name, custom fields and valued \
        tags is refreshed while the entry is not yet handed to the sender. Works on a \
        RUNNING campaign: the new entries go out on the next ticks. ", "What the request cannot finish within 10 s (a list of \
    more than some tens of thousands of contacts) continues in the background: the answer is \
    then 202 with the campaign's `attach` operation, which the sweeper carries on a time budget \
    every minute; `GET /campaigns/{id}/operation` shows its progress, and the campaign may be \
    launched meanwhile (it sends what is attached). An attach asked for while one runs joins \
    it (202, attached after it, `requests` counts both); one asked for while a reset, retry or \
    expiry runs is refused (409)."),
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    request_body = Attach,
    responses(
        (status = 200, description = "Done within the request: what was added", body = AttachResult,
            example = json!({"added": 120, "already_present": 3})),
        (status = 202, description = "Continues in the background: the attach operation, RUNNING", body = OperationView,
            example = json!(ex::operation("attach", "RUNNING", "READY"))),
        (status = 404, description = "No such campaign or list", body = ErrorBody),
        (status = 409, description = "The campaign is completed or cancelled, its end date passed, or a reset, retry or expiry is in progress", body = ErrorBody),
    )
)]
async fn attach_list(
    State(c): State<Arc<Commands>>,
    t: TenantId,
    Path(id): Path<CampaignId>,
    JsonBody(b): JsonBody<Attach>,
) -> R {
    attached(c.attach_list(&t, &id, &b.list_id).await?)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/segments", tag = "audience",
    description = concat!("Adds every contact having ALL the given tags AND all the given valued tags \
        (values match without case) to the campaign's hopper, like attaching a list. At \
        least one tag or valued tag is required, so contacts without tags cannot be \
        targeted this way. ", "What the request cannot finish within 10 s continues in the \
        background (202 with the `attach` operation), as for lists."),
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = Segment, example = json!({"tags": ["vip"], "valued_tags": {"city": "Pune"}})),
    responses(
        (status = 200, description = "Done within the request: what was added", body = AttachResult,
            example = json!({"added": 42, "already_present": 0})),
        (status = 202, description = "Continues in the background: the attach operation, RUNNING", body = OperationView,
            example = json!(ex::operation("attach", "RUNNING", "READY"))),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "The campaign is completed or cancelled, its end date passed, or a reset, retry or expiry is in progress", body = ErrorBody),
        (status = 422, description = "An empty selector", body = ErrorBody,
            example = json!({"error": "invalid", "message": "tags: give at least one tag or valued tag: a segment selects contacts having all of them, and contacts without tags cannot be targeted this way", "field": "tags"})),
    )
)]
async fn attach_segment(
    State(c): State<Arc<Commands>>,
    t: TenantId,
    Path(id): Path<CampaignId>,
    JsonBody(b): JsonBody<Segment>,
) -> R {
    attached(c.attach_segment(&t, &id, &b).await?)
}

/// The OpenAPI description of the audience routes, merged into `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    paths(
        upsert_contacts, list_contacts, get_contact, put_contact, delete_contact,
        import_inline, create_import, get_import, import_errors,
        create_list, list_lists, count_reach, get_list, add_members, list_members,
        attach_list, attach_segment
    ),
    components(schemas(
        Contact, NewContact, ContactsInput, ContactItems, ContactsCreated, ContactPage, ContactList, ContactListPage, ReachRequest, Reach, NewList,
        Members, Member, MemberPage, Added, Attach, AttachResult, Segment, NewImport,
        Import, ImportView, ImportStatus, ImportSource, ColumnMap, Column, RowError,
        RowErrorPage, UploadTicket, ErrorBody, PhoneNumber
    )),
    tags(
        (name = "contacts", description = "Contacts (R2.1)"),
        (name = "lists", description = "Lists of contacts (R2.2)"),
        (name = "audience", description = "A campaign's audience from lists and segments (R2.2, R2.3)"),
        (name = "imports", description = "CSV imports (R2.4)"),
    )
)]
pub struct AudienceApi;
