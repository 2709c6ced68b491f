//! Meta WhatsApp Cloud API: sending templates (PROVIDERS.md section 1), verifying and
//! parsing webhooks (section 2). Error codes are classified by
//! `crate::domain::outcome` (section 3).
//!
//! Nothing here logs a token or a full phone number: phones appear masked
//! (`PhoneNumber::masked`), tokens never.

use crate::domain::account::Account;
use crate::domain::inbound::{
    EntryRef, Inbound, InboundMessage, MarketingChoice, StatusKind, StatusUpdate, TemplateUpdate,
};
use crate::domain::outcome::{meta_reason, redact_numbers, SendFailure};
use crate::domain::phone::PhoneNumber;
use crate::domain::template::{Category, MediaHeader, MediaKind};
use crate::domain::Time;
use crate::ports::{Accepted, MessagingProvider, OutboundTemplate, Secrets};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Header Meta signs every webhook POST with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// `MessagingProvider` over the WhatsApp Cloud API.
#[derive(Clone)]
pub struct MetaProvider {
    http: reqwest::Client,
    /// Without a trailing slash, e.g. `https://graph.facebook.com`.
    base_url: String,
    /// Graph API version, e.g. `v23.0`.
    version: String,
    secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for MetaProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaProvider")
            .field("base_url", &self.base_url)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MetaProvider {
    /// `base_url` like `https://graph.facebook.com` (a trailing `/` is dropped), `version`
    /// like `v23.0`. The HTTP client connects within 3 s and gives up on a request
    /// after 10 s.
    pub fn new(
        base_url: impl Into<String>,
        version: impl Into<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        Self::with_client(super::http_client(), base_url, version, secrets)
    }

    /// Like [`MetaProvider::new`] with a caller-built client (shared pools, other timeouts).
    pub fn with_client(
        http: reqwest::Client,
        base_url: impl Into<String>,
        version: impl Into<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let version = version.into().trim_matches('/').to_owned();
        MetaProvider {
            http,
            base_url,
            version,
            secrets,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// `{base}/{version}/{phone_number_id}/messages`.
    pub fn messages_url(&self, phone_number_id: &str) -> String {
        format!(
            "{}/{}/{}/messages",
            self.base_url, self.version, phone_number_id
        )
    }

    /// `{base}/{version}/{phone_number_id}/marketing_messages`: Meta's Marketing Messages
    /// API.
    pub fn marketing_messages_url(&self, phone_number_id: &str) -> String {
        format!(
            "{}/{}/{}/marketing_messages",
            self.base_url, self.version, phone_number_id
        )
    }
}

/// The header component of a media header: `{"type":"header","parameters":[{"type":
/// "image","image":{"link":..}}]}` (a document also names its file).
pub fn header_component(h: &MediaHeader) -> Option<Value> {
    let link = h.url.as_deref()?;
    let kind = h.kind.as_str();
    let mut media = json!({ "link": link });
    if let (MediaKind::Document, Some(f)) = (h.kind, &h.filename) {
        media["filename"] = Value::String(f.clone());
    }
    Some(json!({"type": "header", "parameters": [{"type": kind, kind: media}]}))
}

/// The Cloud API request body for a template message (PROVIDERS.md section 1); a media
/// header goes out as the header parameter.
pub fn template_body(msg: &OutboundTemplate) -> Value {
    let mut components = Vec::new();
    components.extend(msg.header.as_ref().and_then(header_component));
    if !msg.params.is_empty() {
        let parameters: Vec<Value> = msg
            .params
            .iter()
            .map(|p| json!({"type": "text", "text": p}))
            .collect();
        components.push(json!({"type": "body", "parameters": parameters}));
    }
    for (i, payload) in msg.quick_reply_payloads.iter().enumerate() {
        components.push(json!({
            "type": "button",
            "sub_type": "quick_reply",
            "index": i.to_string(),
            "parameters": [{"type": "payload", "payload": payload}],
        }));
    }
    if let Some(u) = &msg.url_suffix {
        components.push(json!({
            "type": "button",
            "sub_type": "url",
            "index": u.index.to_string(),
            "parameters": [{"type": "text", "text": u.text}],
        }));
    }
    let mut template = json!({
        "name": msg.template,
        "language": {"code": msg.language},
    });
    if !components.is_empty() {
        template["components"] = Value::Array(components);
    }
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": msg.to.as_str(),
        "type": "template",
        "template": template,
    });
    // The Marketing Messages API's request takes no callback data
    // (`MarketingMessageRequestPayload` allows no other property).
    if !msg.callback_data.is_empty() && !msg.marketing_messages {
        body["biz_opaque_callback_data"] = Value::String(msg.callback_data.clone());
    }
    body
}

/// What a Graph API answer means: the message id, or the classified failure.
/// A Meta error body wins whatever the HTTP status.
pub fn interpret_response(status: u16, body: &[u8]) -> Result<Accepted, SendFailure> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(err) = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object())
    {
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return match err.get("code").and_then(as_i64_lenient) {
            Some(code) => Err(SendFailure::meta(code, message)),
            None => Err(SendFailure::transport(format!(
                "HTTP {status}: Meta error without a code: {}",
                redact_numbers(message)
            ))),
        };
    }
    if !(200..300).contains(&status) {
        let what = if json.is_some() {
            "without an error object"
        } else {
            "without a JSON body"
        };
        let reason = format!("HTTP {status} from Meta {what}");
        // A server error may come after the message was accepted; a 4xx refused it.
        return Err(if status >= 500 {
            SendFailure::outcome_unknown(reason)
        } else {
            SendFailure::transport(reason)
        });
    }
    let first = json
        .as_ref()
        .and_then(|v| v.get("messages"))
        .and_then(|m| m.get(0));
    let id = first
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let message_status = first
        .and_then(|m| m.get("message_status"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match id {
        Some(id) => Ok(Accepted {
            message_id: id.to_owned(),
            message_status,
        }),
        None => Err(SendFailure::outcome_unknown(format!(
            "HTTP {status} from Meta without a message id"
        ))),
    }
}

#[async_trait]
impl MessagingProvider for MetaProvider {
    async fn send(
        &self,
        account: &Account,
        msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        let token = super::credential(&*self.secrets, account, "Meta").await?;
        let url = if msg.marketing_messages {
            self.marketing_messages_url(&account.sender_id)
        } else {
            self.messages_url(&account.sender_id)
        };
        let body = template_body(msg);
        let to = msg.to.masked();
        tracing::debug!(account = %account.id, to = %to, template = %msg.template, "meta send");
        let req = self.http.post(&url).bearer_auth(token).json(&body);
        super::send_request(req, "Meta", account, &to, interpret_response).await
    }
}

// ---------------------------------------------------------------------------------------
// Webhook authentication

/// `sha256=<hex HMAC-SHA256(body, app_secret)>`, the value of `X-Hub-Signature-256`.
pub fn signature_header(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `X-Hub-Signature-256` against the raw body, in constant time. A missing or
/// malformed header, or an empty secret (a configuration error anyone could sign for),
/// fails.
pub fn verify_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The subscription handshake (`GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`):
/// the challenge to echo with 200 when the token matches, else `None` (answer 403).
pub fn verify_handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Option<String> {
    if mode != Some("subscribe") || expected_token.is_empty() {
        return None;
    }
    let token = token?;
    if !bool::from(token.as_bytes().ct_eq(expected_token.as_bytes())) {
        return None;
    }
    challenge.map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// Webhook parsing: lenient structs, every field optional, unknown fields ignored.

#[derive(Debug, Default, Deserialize)]
struct Envelope {
    object: Option<String>,
    entry: Option<Vec<WebhookEntry>>,
}

#[derive(Debug, Default, Deserialize)]
struct WebhookEntry {
    /// The WABA id (a string; numbers accepted).
    id: Option<Value>,
    changes: Option<Vec<Change>>,
}

#[derive(Debug, Default, Deserialize)]
struct Change {
    field: Option<String>,
    /// Kept raw: only `messages` values are read, the others may have any shape.
    value: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct MessagesValue {
    metadata: Option<Metadata>,
    contacts: Option<Vec<ContactItem>>,
    statuses: Option<Vec<Value>>,
    messages: Option<Vec<Value>>,
}

/// `user_preferences` values: a contact's choices about the business's messages.
#[derive(Debug, Default, Deserialize)]
struct PreferencesValue {
    metadata: Option<Metadata>,
    user_preferences: Option<Vec<PreferenceItem>>,
}

#[derive(Debug, Default, Deserialize)]
struct PreferenceItem {
    wa_id: Option<String>,
    detail: Option<String>,
    category: Option<String>,
    value: Option<String>,
    timestamp: Option<Value>,
}

/// The marketing choices of a `user_preferences` value: `stop` stops, `resume` and
/// `signup` resume; other categories and values, and items without a number or a time,
/// give nothing.
fn parse_preferences(value: Value) -> Vec<MarketingChoice> {
    let v: PreferencesValue = match serde_json::from_value(value) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "meta webhook: user preferences of an unexpected shape skipped");
            return Vec::new();
        }
    };
    let Some(sender_id) = v.metadata.and_then(|m| m.phone_number_id) else {
        return Vec::new();
    };
    let choice = |p: PreferenceItem| {
        if p.category.as_deref() != Some("marketing_messages") {
            return None;
        }
        let stopped = match p.value.as_deref()? {
            "stop" => true,
            "resume" | "signup" => false,
            _ => return None,
        };
        Some(MarketingChoice {
            sender_id: sender_id.clone(),
            phone: PhoneNumber::parse(p.wa_id.as_deref()?).ok()?,
            stopped,
            at: epoch_time(p.timestamp.as_ref())?,
            detail: p.detail,
        })
    };
    v.user_preferences
        .unwrap_or_default()
        .into_iter()
        .filter_map(choice)
        .collect()
}

/// `message_template_status_update` and `message_template_quality_update` values.
#[derive(Debug, Default, Deserialize)]
struct TemplateValue {
    event: Option<String>,
    message_template_id: Option<Value>,
    message_template_name: Option<String>,
    message_template_language: Option<String>,
    reason: Option<String>,
    rejection_info: Option<ReasonInfo>,
    other_info: Option<OtherInfo>,
    new_quality_score: Option<String>,
    /// `template_category_update`: the category the template now has, and the one it
    /// will have (a notice ahead of the change).
    new_category: Option<String>,
    correct_category: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ReasonInfo {
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct OtherInfo {
    title: Option<String>,
    description: Option<String>,
}

/// `contacts[]` of a messages value: who the statuses and messages are about.
#[derive(Debug, Default, Deserialize)]
struct ContactItem {
    wa_id: Option<String>,
    /// The business-scoped user id (2026).
    user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    phone_number_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StatusItem {
    id: Option<String>,
    status: Option<String>,
    timestamp: Option<Value>,
    recipient_type: Option<String>,
    recipient_id: Option<String>,
    biz_opaque_callback_data: Option<String>,
    errors: Option<Vec<ErrorItem>>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorItem {
    code: Option<Value>,
    title: Option<String>,
    message: Option<String>,
    error_data: Option<ErrorData>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorData {
    details: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct MessageItem {
    from: Option<String>,
    id: Option<String>,
    timestamp: Option<Value>,
    context: Option<Context>,
    text: Option<Text>,
    button: Option<Button>,
    interactive: Option<Interactive>,
}

#[derive(Debug, Default, Deserialize)]
struct Context {
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Text {
    body: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Button {
    payload: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Interactive {
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
}

#[derive(Debug, Default, Deserialize)]
struct Reply {
    id: Option<String>,
    title: Option<String>,
}

fn as_i64_lenient(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Meta timestamps are epoch seconds, as a string (numbers accepted too).
fn epoch_time(v: Option<&Value>) -> Option<Time> {
    chrono::DateTime::from_timestamp(as_i64_lenient(v?)?, 0)
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.trim().is_empty())
}

fn parse_status(item: StatusItem) -> Option<StatusUpdate> {
    if item.recipient_type.as_deref() == Some("group") {
        return None;
    }
    let status = match item.status.as_deref()? {
        "sent" => StatusKind::Sent,
        "delivered" => StatusKind::Delivered,
        "read" => StatusKind::Read,
        "failed" => {
            let first = item.errors.as_ref().and_then(|e| e.first());
            let code = first.and_then(|e| e.code.as_ref()).and_then(as_i64_lenient);
            let text = first
                .and_then(|e| {
                    non_empty(e.error_data.as_ref().and_then(|d| d.details.as_ref()))
                        .or_else(|| non_empty(e.title.as_ref()))
                        .or_else(|| non_empty(e.message.as_ref()))
                })
                .unwrap_or("");
            let reason = match code {
                Some(code) => meta_reason(code, text),
                None if text.is_empty() => "delivery failed".to_owned(),
                None => redact_numbers(text),
            };
            StatusKind::Failed {
                code,
                reason,
                class: None,
            }
        }
        // `played` (voice messages) and whatever Meta adds later mean nothing to a campaign.
        _ => return None,
    };
    let message_id = item.id.filter(|s| !s.trim().is_empty())?;
    let at = epoch_time(item.timestamp.as_ref())?;
    let (entry, attempt) = item
        .biz_opaque_callback_data
        .as_deref()
        .and_then(EntryRef::decode_attempt)
        .map_or((None, None), |(r, a)| (Some(r), a));
    let recipient = item
        .recipient_id
        .as_deref()
        .and_then(|r| PhoneNumber::parse(r).ok());
    Some(StatusUpdate {
        message_id,
        status,
        at,
        entry,
        attempt,
        sender_id: None,
        user_id: None,
        recipient,
    })
}

fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A template status or quality update; `None` when it names no template or says
/// nothing we track.
fn parse_template_update(
    field: &str,
    v: TemplateValue,
    waba_id: Option<String>,
) -> Option<TemplateUpdate> {
    use super::meta_templates::{meaningful_reason, quality_from_meta, status_from_meta};
    let name = v.message_template_name.filter(|s| !s.trim().is_empty())?;
    let language = v
        .message_template_language
        .filter(|s| !s.trim().is_empty())?;
    let template_id = id_text(v.message_template_id.as_ref());
    if field == "message_template_quality_update" {
        let score = v.new_quality_score?;
        return Some(TemplateUpdate {
            waba_id,
            template_id,
            name,
            language,
            quality: Some(quality_from_meta(&score)?),
            event: format!("QUALITY_{}", score.to_ascii_uppercase()),
            status: None,
            reason: None,
            category: None,
        });
    }
    if field == "template_category_update" {
        let category = |c: &Option<String>| {
            let c = c.as_deref()?.trim().to_ascii_uppercase();
            serde_json::from_value::<Category>(Value::String(c)).ok()
        };
        // A notice names the category to come (`correct_category`; its `new_category` is
        // the current one): nothing changes yet. A notice delivered again after the change
        // must not move the template back.
        let (event, category) = match (&v.correct_category, category(&v.new_category)) {
            (None, Some(c)) => ("CATEGORY_UPDATE", Some(c)),
            _ => ("CATEGORY_IMPENDING", None),
        };
        return Some(TemplateUpdate {
            waba_id,
            template_id,
            name,
            language,
            quality: None,
            event: event.into(),
            status: None,
            reason: v.correct_category.filter(|_| category.is_none()),
            category,
        });
    }
    let event = v.event.filter(|e| !e.trim().is_empty())?;
    // The most specific words first: the rejection explanation, the pause description,
    // then Meta's reason code.
    let reason = meaningful_reason(v.rejection_info.and_then(|r| r.reason).as_deref())
        .or_else(|| {
            v.other_info.and_then(|o| {
                meaningful_reason(o.description.as_deref())
                    .or_else(|| meaningful_reason(o.title.as_deref()))
            })
        })
        .or_else(|| meaningful_reason(v.reason.as_deref()));
    Some(TemplateUpdate {
        waba_id,
        template_id,
        name,
        language,
        status: status_from_meta(&event),
        event: event.to_ascii_uppercase(),
        reason,
        quality: None,
        category: None,
    })
}

fn parse_message(item: MessageItem, sender_id: &str) -> Option<InboundMessage> {
    let from = PhoneNumber::parse(item.from.as_deref()?).ok()?;
    let message_id = item.id.filter(|s| !s.is_empty())?;
    let at = epoch_time(item.timestamp.as_ref())?;
    let context_id = item.context.and_then(|c| c.id).filter(|s| !s.is_empty());
    let reply = item
        .interactive
        .and_then(|i| i.button_reply.or(i.list_reply));
    let (text, button) = if let Some(t) = item.text.and_then(|t| t.body) {
        (Some(t), None)
    } else if let Some(b) = item.button {
        (b.text, b.payload)
    } else if let Some(r) = reply {
        (r.title, r.id)
    } else {
        (None, None)
    };
    Some(InboundMessage {
        sms: false,
        sender_id: sender_id.to_owned(),
        from,
        message_id,
        at,
        context_id,
        text,
        button,
        user_id: None,
    })
}

/// Statuses, customer messages and template updates of a Meta webhook body, in order.
/// `field: messages` changes give statuses and messages; `message_template_status_update`
/// and `message_template_quality_update` give [`Inbound::TemplateStatus`] (R3.2, R3.4);
/// `user_preferences` gives [`Inbound::MarketingChoice`]; other fields and other envelopes (`object` other than
/// `whatsapp_business_account`) give nothing. Items that do not fit (no id, no timestamp,
/// a sender that is not a phone number) are skipped; only a body that is not a JSON
/// object of the envelope's shape is an error.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<Inbound>, serde_json::Error> {
    let env: Envelope = serde_json::from_slice(body)?;
    let mut out = Vec::new();
    if env.object.as_deref() != Some("whatsapp_business_account") {
        return Ok(out);
    }
    for entry in env.entry.unwrap_or_default() {
        let waba_id = id_text(entry.id.as_ref());
        for change in entry.changes.unwrap_or_default() {
            let field = change.field.as_deref().unwrap_or("");
            if matches!(
                field,
                "message_template_status_update"
                    | "message_template_quality_update"
                    | "template_category_update"
            ) {
                let Some(value) = change.value else { continue };
                match serde_json::from_value::<TemplateValue>(value) {
                    Ok(v) => out.extend(
                        parse_template_update(field, v, waba_id.clone())
                            .map(Inbound::TemplateStatus),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "meta webhook: template update of an unexpected shape skipped")
                    }
                }
                continue;
            }
            if field == "user_preferences" {
                let Some(value) = change.value else { continue };
                out.extend(
                    parse_preferences(value)
                        .into_iter()
                        .map(Inbound::MarketingChoice),
                );
                continue;
            }
            if field != "messages" {
                continue;
            }
            let Some(value) = change.value else { continue };
            let (statuses, messages) = parse_messages_value(value);
            out.extend(statuses.into_iter().map(Inbound::Status));
            out.extend(messages.into_iter().map(Inbound::Message));
        }
    }
    Ok(out)
}

/// The statuses and customer messages of one `field: messages` change value
/// (`{"metadata":..,"statuses":[..],"messages":[..]}`), each in order; items that do not
/// fit are skipped. Shared with providers that pass Meta's value through (Kaleyra's
/// `meta_object.value`).
pub(crate) fn parse_messages_value(value: Value) -> (Vec<StatusUpdate>, Vec<InboundMessage>) {
    let mut statuses = Vec::new();
    let mut messages = Vec::new();
    let value: MessagesValue = match serde_json::from_value(value) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "meta webhook: messages value of an unexpected shape skipped");
            return (statuses, messages);
        }
    };
    let sender_id = value
        .metadata
        .and_then(|m| m.phone_number_id)
        .unwrap_or_default();
    // The business-scoped user id of a number, from the value's `contacts`.
    let contacts = value.contacts.unwrap_or_default();
    let user_of = |wa_id: Option<&str>| {
        let c = contacts.iter().find(|c| c.wa_id.as_deref() == wa_id)?;
        c.user_id.clone().filter(|u| !u.trim().is_empty())
    };
    for raw in value.statuses.unwrap_or_default() {
        match serde_json::from_value::<StatusItem>(raw) {
            Ok(item) => {
                let user_id = user_of(item.recipient_id.as_deref());
                statuses.extend(parse_status(item).map(|mut s| {
                    s.sender_id = Some(sender_id.clone()).filter(|id| !id.is_empty());
                    s.user_id = user_id;
                    s
                }))
            }
            Err(e) => {
                tracing::warn!(error = %e, "meta webhook: status of an unexpected shape skipped")
            }
        }
    }
    for raw in value.messages.unwrap_or_default() {
        match serde_json::from_value::<MessageItem>(raw) {
            Ok(item) => messages.extend(parse_message(item, &sender_id).map(|mut m| {
                m.user_id = user_of(Some(m.from.as_str()));
                m
            })),
            Err(e) => {
                tracing::warn!(error = %e, "meta webhook: message of an unexpected shape skipped")
            }
        }
    }
    (statuses, messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::Provider;
    use crate::domain::outcome::FailureClass;
    use crate::ports::PortResult;
    use axum::http::StatusCode;
    use axum::routing::post;

    struct FixedSecrets;

    #[async_trait]
    impl Secrets for FixedSecrets {
        async fn resolve(&self, reference: &str) -> PortResult<String> {
            match reference {
                "env:TOKEN" => Ok("tok-123".into()),
                _ => Err(crate::ports::PortError::Refused("no such secret".into())),
            }
        }
    }

    fn account(token_ref: &str) -> Account {
        Account {
            marketing_messages: false,
            id: "acc_1".into(),
            tenant: "t1".into(),
            name: "Main".into(),
            provider: Provider::Meta,
            sender_id: "106540352242922".into(),
            token_ref: token_ref.into(),
            rate_limit: 80,
            messaging_tier: None,
            created_at: chrono::Utc::now(),
            portfolio_id: None,
            caller_ids: Vec::new(),
            max_concurrent_calls: None,
        }
    }

    fn msg(params: &[&str], payloads: &[&str]) -> OutboundTemplate {
        OutboundTemplate {
            marketing_messages: false,
            to: PhoneNumber::parse("919812345678").unwrap(),
            template: "diwali_offer".into(),
            language: "en".into(),
            params: params.iter().map(|s| s.to_string()).collect(),
            quick_reply_payloads: payloads.iter().map(|s| s.to_string()).collect(),
            callback_data: "ce1|t1|cmp_42|3|919812345678".into(),
            header: None,
            url_suffix: None,
        }
    }

    #[test]
    fn r7_1_template_body_has_meta_shape() {
        let body = template_body(&msg(&["Asha", "20%"], &["OPTIN_YES|cmp_42", "STOP|cmp_42"]));
        assert_eq!(
            body,
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"919812345678","type":"template",
             "biz_opaque_callback_data":"ce1|t1|cmp_42|3|919812345678",
             "template":{"name":"diwali_offer","language":{"code":"en"},
              "components":[
               {"type":"body","parameters":[{"type":"text","text":"Asha"},{"type":"text","text":"20%"}]},
               {"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"OPTIN_YES|cmp_42"}]},
               {"type":"button","sub_type":"quick_reply","index":"1","parameters":[{"type":"payload","payload":"STOP|cmp_42"}]}]}})
        );
        let bare = template_body(&msg(&[], &[]));
        assert!(bare["template"].get("components").is_none());
        let only_button = template_body(&msg(&[], &["X"]));
        assert_eq!(
            only_button["template"]["components"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn r3_1_media_header_is_sent_as_the_header_parameter() {
        let doc = MediaHeader {
            kind: MediaKind::Document,
            url: Some("https://cdn.example.com/terms.pdf".into()),
            filename: Some("terms.pdf".into()),
        };
        let body = template_body(&OutboundTemplate {
            header: Some(doc),
            ..msg(&["Asha"], &[])
        });
        assert_eq!(
            body["template"]["components"][0],
            json!({"type": "header", "parameters": [{"type": "document",
                "document": {"link": "https://cdn.example.com/terms.pdf", "filename": "terms.pdf"}}]})
        );
        assert_eq!(body["template"]["components"][1]["type"], "body");
        let image = MediaHeader {
            kind: MediaKind::Image,
            url: Some("https://cdn.example.com/banner.jpg".into()),
            filename: None,
        };
        assert_eq!(
            header_component(&image),
            Some(
                json!({"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/banner.jpg"}}]})
            )
        );
        assert_eq!(
            template_body(&msg(&["Asha"], &[]))["template"]["components"][0]["type"],
            "body"
        );
    }

    #[test]
    fn r4_7_meta_error_body_wins_whatever_the_status() {
        let err = br#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429}}"#;
        for status in [400, 200, 500] {
            let f = interpret_response(status, err).unwrap_err();
            assert_eq!(f.code, Some(130429));
            assert_eq!(f.class, FailureClass::Temporary);
        }
        let f = interpret_response(400, br#"{"error":{"message":"x","code":131026}}"#).unwrap_err();
        assert_eq!(
            (f.class, f.reason.as_str()),
            (FailureClass::Permanent, "Message Undeliverable")
        );
        let f = interpret_response(401, br#"{"error":{"message":"bad token","code":190}}"#)
            .unwrap_err();
        assert_eq!(f.class, FailureClass::Campaign);
    }

    #[test]
    fn r4_7_unreadable_answers_are_transport_failures() {
        // A server error or a success without an id may follow an accepted message.
        let f = interpret_response(502, b"<html>Bad Gateway</html>").unwrap_err();
        assert_eq!((f.class, f.code), (FailureClass::Unknown, None));
        let f = interpret_response(200, br#"{"messaging_product":"whatsapp","messages":[]}"#)
            .unwrap_err();
        assert_eq!((f.class, f.code), (FailureClass::Unknown, None));
        // A refusal without a readable body sent nothing.
        let f = interpret_response(403, b"<html>Forbidden</html>").unwrap_err();
        assert_eq!((f.class, f.code), (FailureClass::Temporary, None));
        assert_eq!(
            interpret_response(
                200,
                br#"{"messages":[{"id":"wamid.X","message_status":"accepted"}]}"#
            ),
            Ok(Accepted {
                message_id: "wamid.X".to_owned(),
                message_status: Some("accepted".to_owned()),
            })
        );
    }

    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn r7_2_missing_credentials_pause_the_campaign_without_leaking() {
        let p = MetaProvider::new("http://127.0.0.1:9", "v23.0", Arc::new(FixedSecrets));
        let f = p
            .send(&account("env:MISSING"), &msg(&[], &[]))
            .await
            .unwrap_err();
        assert_eq!(f.class, FailureClass::Campaign);
        assert_eq!(f.reason, "credentials unavailable: env:MISSING");
    }

    #[tokio::test]
    async fn r7_1_send_posts_with_bearer_and_maps_answers() {
        let router = axum::Router::new().route(
            "/{version}/{id}/messages",
            post(
                |headers: axum::http::HeaderMap,
                 axum::extract::Path((v, id)): axum::extract::Path<(String, String)>,
                 body: axum::body::Bytes| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("");
                    let json: Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(v, "v23.0");
                    assert_eq!(id, "106540352242922");
                    if auth != "Bearer tok-123" {
                        return (
                            StatusCode::UNAUTHORIZED,
                            r#"{"error":{"message":"bad","code":190}}"#.to_owned(),
                        );
                    }
                    match json["template"]["name"].as_str() {
                        Some("html500") => {
                            (StatusCode::BAD_GATEWAY, "<html>oops</html>".to_owned())
                        }
                        Some("noid") => (StatusCode::OK, r#"{"messages":[]}"#.to_owned()),
                        _ => (
                            StatusCode::OK,
                            r#"{"messages":[{"id":"wamid.OK"}]}"#.to_owned(),
                        ),
                    }
                },
            ),
        );
        let base = serve(router).await;
        let p = MetaProvider::new(format!("{base}/"), "v23.0", Arc::new(FixedSecrets));
        let acc = account("env:TOKEN");
        assert_eq!(
            p.send(&acc, &msg(&["a"], &["b"])).await,
            Ok("wamid.OK".to_owned().into())
        );
        let mut m = msg(&[], &[]);
        m.template = "html500".into();
        let f = p.send(&acc, &m).await.unwrap_err();
        assert_eq!((f.class, f.code), (FailureClass::Unknown, None));
        m.template = "noid".into();
        assert_eq!(
            p.send(&acc, &m).await.unwrap_err().class,
            FailureClass::Unknown
        );
    }

    #[tokio::test]
    async fn r4_7_network_errors_are_transport_failures() {
        // Bind and drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = MetaProvider::new(
            format!("http://127.0.0.1:{port}"),
            "v23.0",
            Arc::new(FixedSecrets),
        );
        let f = p
            .send(&account("env:TOKEN"), &msg(&[], &[]))
            .await
            .unwrap_err();
        assert_eq!((f.class, f.code), (FailureClass::Temporary, None));
        assert!(!f.reason.contains("tok-123"));
    }
}
