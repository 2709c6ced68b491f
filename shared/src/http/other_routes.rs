//! The description of the routes served next to the operator API ([`OtherRoutesApi`]):
//! the provider webhooks (their own function in AWS, `webhook`), and what only the local
//! runner serves: `/health` and its `/local/*` control routes (tag `local`). The handlers
//! live with their routers (`webhook`, `functions/local`, the simulator in `testkit`);
//! the functions here only carry the descriptions that `/openapi.json` adds to the
//! operator API's.

#![allow(dead_code)]

use super::error::ErrorBody;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Security scheme of Meta's webhook: `X-Hub-Signature-256`, the HMAC-SHA256 of the raw
/// body under the app secret.
pub const META_SIGNATURE: &str = "meta_signature";
/// Security scheme of Kaleyra's callbacks: the SID's callback token (`?token=`).
pub const KALEYRA_TOKEN: &str = "kaleyra_token";
/// Security scheme of Twilio's callbacks: `X-Twilio-Signature` under the account's auth
/// token.
pub const TWILIO_SIGNATURE: &str = "twilio_signature";

/// Meta's verification handshake.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    /// `subscribe`.
    #[param(rename = "hub.mode")]
    mode: Option<String>,
    /// The verify token configured for the app (`META_VERIFY_TOKEN`).
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    /// Echoed back when the token matches.
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Which Kaleyra account a callback is for.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KaleyraCallback {
    /// The Kaleyra account (SID) the callback URL was registered for.
    sid: Option<String>,
}

/// The form Twilio posts: a status callback (`MessageSid`, `MessageStatus`, `ErrorCode`,
/// `To`, `From`, ...) or an inbound message (`MessageSid`, `From`, `To`, `Body`, ...).
/// Every parameter counts in the signature, known or not.
#[derive(ToSchema)]
#[schema(example = json!({"MessageSid": "SM0123456789abcdef0123456789abcdef", "MessageStatus": "delivered", "To": "+14155550101", "From": "+15005550006", "AccountSid": "AC00000000000000000000000000000001"}))]
pub struct TwilioForm {
    #[schema(rename = "MessageSid")]
    message_sid: String,
    #[schema(rename = "MessageStatus")]
    message_status: Option<String>,
    #[schema(rename = "ErrorCode")]
    error_code: Option<String>,
    #[schema(rename = "From")]
    from: Option<String>,
    #[schema(rename = "To")]
    to: Option<String>,
    #[schema(rename = "Body")]
    body: Option<String>,
}

/// What a verified webhook answers.
#[derive(ToSchema)]
#[schema(example = json!({"queued": 1}))]
pub struct WebhookTaken {
    /// Always 1: the body is queued for the inbound worker.
    queued: u32,
}

/// `POST /local/clock/advance`: how far to move the clock (the parts add up).
#[derive(ToSchema)]
#[schema(example = json!({"days": 1, "hours": 2}))]
pub struct ClockAdvance {
    seconds: Option<i64>,
    minutes: Option<i64>,
    hours: Option<i64>,
    days: Option<i64>,
}

/// The local clock.
#[derive(ToSchema)]
#[schema(example = json!({"now": "2026-11-22T09:00:00Z"}))]
pub struct ClockNow {
    #[schema(format = DateTime)]
    now: String,
}

#[utoipa::path(
    get, path = "/health", tag = "local",
    description = "Local runner only: answers while it serves. Needs no tenant.",
    security(()),
    responses((status = 200, description = "Serving", body = Object, example = json!({"ok": true})))
)]
fn health() {}

#[utoipa::path(
    get, path = "/webhooks/meta", tag = "webhooks",
    description = "Meta's verification handshake (R7.3): with `hub.mode=subscribe` and the \
        configured verify token it answers `hub.challenge` as plain text; anything else is a 403. \
        Needs no tenant: a provider's request never names one.",
    security(()),
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain",
            example = json!("1158201444")),
        (status = 403, description = "Not a subscribe request with the verify token", body = ErrorBody,
            example = json!({"error": "forbidden", "message": "verification failed"})),
    )
)]
fn meta_verify() {}

#[utoipa::path(
    post, path = "/webhooks/meta", tag = "webhooks",
    description = "Meta's webhook (R6.1, R7.3): statuses, replies and template updates. The \
        `X-Hub-Signature-256` header must be the HMAC-SHA256 of the raw body under the app \
        secret, else 401 and nothing is read. A verified body is queued as it came for the \
        inbound worker, which parses and applies it (what it cannot use is logged and \
        skipped), so the answer is 200 once queued.",
    security(("meta_signature" = [])),
    request_body(content = Object, description = "Meta's webhook payload, signed",
        example = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"}, "statuses": [{"id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgT", "status": "delivered", "timestamp": "1763802005", "recipient_id": "919812345678"}]}}]}]})),
    responses(
        (status = 200, description = "Verified and queued", body = WebhookTaken),
        (status = 401, description = "No signature, or not the body's", body = ErrorBody,
            example = json!({"error": "unauthorized", "message": "invalid signature"})),
        (status = 413, description = "A body over 200 KB", body = ErrorBody,
            example = json!({"error": "too_large", "message": "webhook body over 200 KB"})),
        (status = 503, description = "Not queued: Meta delivers it again", body = ErrorBody,
            example = json!({"error": "unavailable", "message": "try again"})),
    )
)]
fn meta_receive() {}

#[utoipa::path(
    post, path = "/webhooks/kaleyra", tag = "webhooks",
    description = "Kaleyra's status and reply callbacks (R7.3). Kaleyra signs nothing, so the \
        callback URL names its account (`sid`) and carries that SID's token (`token`, or the \
        `X-Kaleyra-Token` header from a proxy); a wrong or missing token is a 401 and nothing \
        is read. A verified body is queued as it came, like Meta's.",
    security(("kaleyra_token" = [])),
    params(KaleyraCallback),
    request_body(content = Object, description = "Kaleyra's callback payload",
        example = json!({"sid": "HXIN1234567890", "status": "delivered", "id": "kal-msg-1", "to": "919812345678"})),
    responses(
        (status = 200, description = "Verified and queued", body = WebhookTaken),
        (status = 401, description = "No token, or not this SID's", body = ErrorBody,
            example = json!({"error": "unauthorized", "message": "invalid token"})),
        (status = 413, description = "A body over 200 KB", body = ErrorBody,
            example = json!({"error": "too_large", "message": "webhook body over 200 KB"})),
        (status = 503, description = "Not queued: Kaleyra delivers it again", body = ErrorBody,
            example = json!({"error": "unavailable", "message": "try again"})),
    )
)]
fn kaleyra_receive() {}

#[utoipa::path(
    post, path = "/webhooks/twilio/{tenant}/{account_id}", tag = "webhooks",
    description = "Twilio's status callbacks and inbound SMS of one Twilio account (issue 16). \
        `X-Twilio-Signature` must be the Base64 HMAC-SHA1, under the account's auth token, of \
        the URL Twilio called (`PUBLIC_WEBHOOK_URL` and this path and query) followed by every \
        POST parameter's name and value sorted by name; otherwise, or for an account that is \
        not this tenant's Twilio account, a 401 and nothing is read. A verified callback is \
        queued for the inbound worker and answered with an empty TwiML response (Twilio reads \
        the answer to an inbound message as TwiML, and sends nothing for it).",
    security(("twilio_signature" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant of the Twilio account"),
        ("account_id" = String, Path, description = "The Twilio account (`acc_...`) whose auth token signed the callback"),
        ("ref" = Option<String>, Query, description = "A status callback's entry and attempt, as the send put it in the URL; absent on an inbound message"),
    ),
    request_body(content = TwilioForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Verified and queued", body = String, content_type = "text/xml",
            example = json!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")),
        (status = 401, description = "No signature, not the account's, or no such Twilio account", body = ErrorBody,
            example = json!({"error": "unauthorized", "message": "invalid signature"})),
        (status = 413, description = "A body over 200 KB", body = ErrorBody,
            example = json!({"error": "too_large", "message": "webhook body over 200 KB"})),
        (status = 503, description = "Not queued (or the account's token not read just now): Twilio delivers it again", body = ErrorBody,
            example = json!({"error": "unavailable", "message": "try again"})),
    )
)]
fn twilio_receive() {}

#[utoipa::path(
    get, path = "/local/clock", tag = "local",
    description = "Local runner only: the clock every part of the system reads.",
    security(()),
    responses((status = 200, description = "Now", body = ClockNow))
)]
fn clock() {}

#[utoipa::path(
    post, path = "/local/clock/advance", tag = "local",
    description = "Local runner only: moves the clock forward (R8.5), then fires what became \
        due (schedules, ticks, response timeouts).",
    security(()),
    request_body(content = ClockAdvance),
    responses(
        (status = 200, description = "The new time", body = ClockNow),
        (status = 400, description = "A backward move or a malformed body", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "the clock only moves forward"})),
    )
)]
fn clock_advance() {}

/// Filter and paging of `GET /local/sim/messages`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SimMessagesQuery {
    /// Only sends of this tenant (read from the send's callback data).
    tenant: Option<String>,
    /// Only sends of this campaign id.
    campaign: Option<String>,
    /// Only sends to this number (compared by its digits).
    phone: Option<String>,
    /// Page size, 1 to 1000 (default 100); anything else is a 400 naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; another value is a 400 naming `cursor`.
    cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/local/sim/messages", tag = "local",
    description = "Local runner only: the sends the WhatsApp simulator received, oldest first, \
        a page at a time (to, template, parameters, callback data, wamid, and the tenant and \
        campaign the callback data names), filtered by tenant, campaign and phone.",
    security(()),
    params(SimMessagesQuery),
    responses(
        (status = 200, description = "A page of sends", body = Object,
            example = json!({"items": [{"to": "919812345678", "template": "spring_offer", "wamid": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgT", "tenant": "demo", "campaign_id": "cmp_0190a1"}], "next_cursor": null})),
        (status = 400, description = "A bad `limit` or `cursor`; `field` names it", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "limit: must be a whole number from 1 to 1000", "field": "limit"})),
    )
)]
fn sim_messages() {}

/// The detail-types `GET /local/events` filters by (documentation of its `type`).
#[derive(ToSchema)]
#[allow(dead_code)]
enum EventType {
    CampaignStateChanged,
    ReplyReceived,
    AgentConversationRequested,
    InboundConversation,
    ContactOptedOut,
}

/// Filter and paging of `GET /local/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LocalEventsQuery {
    /// Only events of this detail-type (`CampaignStateChanged`, `ReplyReceived`,
    /// `AgentConversationRequested`, `InboundConversation`, `ContactOptedOut`); another
    /// value is a 400 naming `type`.
    #[param(rename = "type", inline, value_type = Option<EventType>)]
    r#type: Option<String>,
    /// Only events of this tenant.
    tenant: Option<String>,
    /// Only events naming this campaign id.
    campaign: Option<String>,
    /// Page size, 1 to 1000 (default 100); anything else is a 400 naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; another value is a 400 naming `cursor`.
    cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/local/events", tag = "local",
    description = "Local runner only: the domain events the system published on its bus \
        (docs/events.md), oldest first, a page at a time, each with its detail-type, the time \
        the bus took it and its detail as a subscriber receives it; filtered by type, tenant and \
        campaign.",
    security(()),
    params(LocalEventsQuery),
    responses(
        (status = 200, description = "A page of events", body = Object,
            example = json!({"items": [{"detail_type": "ReplyReceived", "at": "2026-11-22T09:14:00Z", "detail": {"tenant": "demo", "campaign_id": "cmp_0190a1", "phone": "919812345678"}}], "next_cursor": null})),
        (status = 400, description = "An unknown `type`, a bad `limit` or `cursor`; `field` names it", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "type: unknown event type 'Reply': use one of CampaignStateChanged, ReplyReceived, AgentConversationRequested, InboundConversation, ContactOptedOut", "field": "type"})),
    )
)]
fn local_events() {}

#[utoipa::path(
    get, path = "/local/sim/webhooks", tag = "local",
    description = "Local runner only: every webhook the simulator posted back, with the answer it got.",
    security(()),
    responses((status = 200, description = "The webhooks, oldest first", body = [Object],
        example = json!([{"url": "http://127.0.0.1:3000/webhooks/meta", "status": 200}])))
)]
fn sim_webhooks() {}

#[utoipa::path(
    post, path = "/local/sim/reply", tag = "local",
    description = "Local runner only: a customer reply (`text`, or a quick-reply `button`), \
        signed and posted to the webhook as Meta would.",
    security(()),
    request_body(content = Object, example = json!({"phone": "919812345678", "button": "Yes"})),
    responses(
        (status = 200, description = "The webhook the simulator posted and the answer it got", body = Object,
            example = json!({"url": "http://127.0.0.1:3000/webhooks/meta", "status": 200})),
        (status = 400, description = "A malformed reply", body = Object, example = json!({"error": "phone is required"})),
        (status = 409, description = "The simulator has no webhook URL", body = Object),
    )
)]
fn sim_reply() {}

#[utoipa::path(
    get, path = "/local/sim/failures", tag = "local",
    description = "Local runner only: the send failures set up per number.",
    security(()),
    responses((status = 200, description = "The failures", body = Object,
        example = json!({"919812345678": {"kind": "permanent", "times": null}})))
)]
fn sim_failures() {}

#[utoipa::path(
    post, path = "/local/sim/failures", tag = "local",
    description = "Local runner only: makes sends to a number fail (`permanent`, `temporary` \
        or `campaign`; Meta 131026 / 131000 / 132001, Kaleyra E413 / WA500 / WA401 unless a \
        `code` or `kaleyra_code` is given), `times` times or until cleared.",
    security(()),
    request_body(content = Object, example = json!({"phone": "919812345678", "kind": "temporary", "times": 2})),
    responses(
        (status = 200, description = "The failure set up, with the provider code it answers", body = Object,
            example = json!({"phone": "919812345678", "kind": "temporary", "times": 2, "meta_code": 131000})),
        (status = 400, description = "A malformed failure", body = Object, example = json!({"error": "unknown kind"})),
    )
)]
fn sim_set_failure() {}

#[utoipa::path(
    delete, path = "/local/sim/failures", tag = "local",
    description = "Local runner only: clears the failures set up for `phone`, or every one.",
    security(()),
    params(("phone" = Option<String>, Query, description = "Only this number's failure")),
    responses((status = 200, description = "How many were cleared", body = Object, example = json!({"cleared": 1})))
)]
fn sim_clear_failures() {}

#[utoipa::path(
    get, path = "/local/sim/throttled", tag = "local",
    description = "Local runner only: the sends the simulator refused over its throughput limit (Meta's 130429).",
    security(()),
    responses((status = 200, description = "The refused sends", body = [Object],
        example = json!([{"to": "919812345678", "sender": "106540352242922"}])))
)]
fn sim_throttled() {}

#[utoipa::path(
    get, path = "/local/sim/rate_limit", tag = "local",
    description = "Local runner only: the simulator's throughput limit per sender (80/s by default).",
    security(()),
    responses((status = 200, description = "The limit", body = Object, example = json!({"per_second": 80})))
)]
fn sim_rate_limit() {}

#[utoipa::path(
    post, path = "/local/sim/rate_limit", tag = "local",
    description = "Local runner only: sets the simulator's throughput limit per sender (`null`: none).",
    security(()),
    request_body(content = Object, example = json!({"per_second": 80})),
    responses(
        (status = 200, description = "The limit", body = Object, example = json!({"per_second": 80})),
        (status = 400, description = "Not `{\"per_second\": n | null}`", body = Object,
            example = json!({"error": "expected {\"per_second\": n | null}"})),
    )
)]
fn sim_set_rate_limit() {}

#[utoipa::path(
    put, path = "/local/objects/{key}", tag = "local",
    description = "Local runner only: where `POST /imports` points its upload URL (the \
        in-memory object store stands in for S3); the upload starts the import.",
    security(()),
    params(("key" = String, Path, description = "The object key of the import, `imports/<tenant>/<import id>.csv`")),
    request_body(content = String, content_type = "text/csv", example = json!("phone,name\n919812345678,Asha\n")),
    responses(
        (status = 200, description = "Stored; the import runs"),
        (status = 404, description = "Not an import upload URL", body = ErrorBody,
            example = json!({"error": "not_found", "message": "not an import upload URL"})),
    )
)]
fn upload() {}

/// The routes served next to the operator API: the webhooks and the local runner's own.
#[derive(OpenApi)]
#[openapi(
    paths(
        health, meta_verify, meta_receive, kaleyra_receive, twilio_receive, clock, clock_advance, local_events, sim_messages,
        sim_webhooks, sim_reply, sim_failures, sim_set_failure, sim_clear_failures,
        sim_throttled, sim_rate_limit, sim_set_rate_limit, upload
    ),
    components(schemas(WebhookTaken, TwilioForm, ClockAdvance, ClockNow, ErrorBody)),
    tags(
        (name = "webhooks", description = "Provider webhooks (R7.3): verified by the provider's signature or token, never by a tenant"),
        (name = "local", description = "Only in the local runner (`cargo run -p local`): health and the control routes (R8.5). Need no tenant"),
    )
)]
pub struct OtherRoutesApi;
