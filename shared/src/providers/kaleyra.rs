//! Kaleyra v2 WhatsApp API (PROVIDERS.md section 5): sending templates, reading status
//! callbacks, checking the callback's shared secret.
//!
//! - **Account:** `Account::sender_id` holds `<sid>:<from>` (the Kaleyra account SID and
//!   the business WhatsApp number in digits); `token_ref` names the Kaleyra API key. A
//!   malformed `sender_id` fails the send as [`FailureClass::Campaign`] (the campaign
//!   pauses: every send of the account would fail the same way).
//! - **Send:** `POST {base}/v2/{sid}/whatsapp/{from}/messages`, header `api-key`, body
//!   `{"messaging_object": <the Cloud API body of meta::template_body>,
//!   "extra_info": {"ref": <callback data>}}`.
//! - **Errors:** Kaleyra codes are classified by
//!   [`crate::domain::outcome::classify_kaleyra`]; a Meta error passed through (numeric
//!   `meta_object.error.code` or `error.code`) by `classify_meta`. Kaleyra's invalid-number
//!   error is code `E413`, recorded with the reason
//!   [`crate::domain::outcome::KALEYRA_INVALID_NUMBER_REASON`] verbatim.
//! - **Callbacks:** Kaleyra signs nothing. The callback URL we register carries a shared
//!   token as the query parameter [`TOKEN_QUERY_PARAM`] (`?token=..`; Kaleyra lets one set
//!   the URL but not headers); a proxy may send it instead as the header
//!   [`TOKEN_HEADER`]. [`verify_kaleyra_token`] compares it in constant time.
//!
//! Nothing here logs a key or a full phone number.

use crate::domain::account::Account;
use crate::domain::inbound::{EntryRef, Inbound, StatusKind, StatusUpdate};
use crate::domain::outcome::{meta_reason, redact_numbers, FailureClass, SendFailure};
use crate::domain::Time;
use crate::ports::{Accepted, MessagingProvider, OutboundTemplate, Secrets};
use crate::providers::meta::{parse_messages_value, template_body};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Header carrying the API key on every Kaleyra request.
pub const API_KEY_HEADER: &str = "api-key";
/// Query parameter of the registered callback URL that carries the shared token.
pub const TOKEN_QUERY_PARAM: &str = "token";
/// Header accepted instead of the query parameter (e.g. added by a proxy).
pub const TOKEN_HEADER: &str = "X-Kaleyra-Token";

/// `<sid>:<from>` of `Account::sender_id` for Kaleyra accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KaleyraSender {
    pub sid: String,
    /// The business number, digits only (a leading `+` is dropped).
    pub from: String,
}

impl KaleyraSender {
    /// `None` unless `s` is `<sid>:<from>` with an alphanumeric (`_`/`-` allowed) SID and
    /// a number of 6 to 15 digits.
    pub fn parse(s: &str) -> Option<Self> {
        let (sid, from) = s.trim().split_once(':')?;
        let sid = sid.trim();
        let from = from.trim();
        let from = from.strip_prefix('+').unwrap_or(from);
        let sid_ok = !sid.is_empty()
            && sid.len() <= 64
            && sid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let from_ok = (6..=15).contains(&from.len()) && from.chars().all(|c| c.is_ascii_digit());
        (sid_ok && from_ok).then(|| KaleyraSender {
            sid: sid.to_owned(),
            from: from.to_owned(),
        })
    }
}

/// `MessagingProvider` over Kaleyra's v2 WhatsApp API.
#[derive(Clone)]
pub struct KaleyraProvider {
    http: reqwest::Client,
    /// Without a trailing slash, e.g. `https://api.kaleyra.io`.
    base_url: String,
    secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for KaleyraProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KaleyraProvider")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl KaleyraProvider {
    /// `base_url` like `https://api.kaleyra.io` or a regional host (a trailing `/` is
    /// dropped). Same timeouts as the Meta client.
    pub fn new(base_url: impl Into<String>, secrets: Arc<dyn Secrets>) -> Self {
        Self::with_client(super::http_client(), base_url, secrets)
    }

    pub fn with_client(
        http: reqwest::Client,
        base_url: impl Into<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        KaleyraProvider {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            secrets,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `{base}/v2/{sid}/whatsapp/{from}/messages`.
    pub fn messages_url(&self, sender: &KaleyraSender) -> String {
        format!(
            "{}/v2/{}/whatsapp/{}/messages",
            self.base_url, sender.sid, sender.from
        )
    }
}

/// The v2 request body: Meta's Cloud API message wrapped in `messaging_object`, our
/// callback data as `extra_info.ref`.
pub fn kaleyra_body(msg: &OutboundTemplate) -> Value {
    let mut body = json!({ "messaging_object": template_body(msg) });
    if !msg.callback_data.is_empty() {
        body["extra_info"] = json!({ "ref": msg.callback_data });
    }
    body
}

fn as_i64_lenient(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A code that is Kaleyra's own (letters and digits, not a plain number).
fn kaleyra_code(v: Option<&Value>) -> Option<&str> {
    str_of(v).filter(|c| c.parse::<i64>().is_err())
}

/// The message of an error object: `message`, `error` (text) or `title`.
fn error_message(v: &Value) -> &str {
    str_of(v.get("message"))
        .or_else(|| str_of(v.get("error")))
        .or_else(|| str_of(v.get("title")))
        .unwrap_or("")
}

/// What a Kaleyra answer means: the message id, or the classified failure. An error in
/// the body wins whatever the HTTP status: a Meta code passed through (numeric
/// `meta_object.error.code`, `error.code`) first, then Kaleyra's own code (`code`,
/// `error.code`, `error_code`; `WA200` is success). The id is `data[0].message_id`,
/// `data.message_id`, `message_id` or `id`, the first present.
pub fn interpret_kaleyra_response(status: u16, body: &[u8]) -> Result<Accepted, SendFailure> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(v) = &json {
        let meta_err = v
            .get("meta_object")
            .and_then(|m| m.get("error"))
            .or_else(|| v.get("error"))
            .filter(|e| e.is_object());
        if let Some(err) = meta_err {
            if let Some(code) = err
                .get("code")
                .filter(|c| c.is_number() || kaleyra_code(Some(c)).is_none())
                .and_then(as_i64_lenient)
            {
                return Err(SendFailure::meta(code, error_message(err)));
            }
        }
        let error_obj = v.get("error").filter(|e| e.is_object());
        let code = kaleyra_code(error_obj.and_then(|e| e.get("code")))
            .map(|c| (c, error_obj.map_or("", error_message)))
            .or_else(|| kaleyra_code(v.get("error_code")).map(|c| (c, error_message(v))))
            .or_else(|| kaleyra_code(v.get("code")).map(|c| (c, error_message(v))))
            .filter(|(c, _)| !c.eq_ignore_ascii_case("WA200"));
        if let Some((code, message)) = code {
            return Err(SendFailure::kaleyra(code, message));
        }
    }
    if !(200..300).contains(&status) {
        let what = if json.is_some() {
            "without an error code"
        } else {
            "without a JSON body"
        };
        let reason = format!("HTTP {status} from Kaleyra {what}");
        return Err(if status >= 500 {
            SendFailure::outcome_unknown(reason)
        } else {
            SendFailure::transport(reason)
        });
    }
    let id = json.as_ref().and_then(|v| {
        let data = v.get("data");
        str_of(
            data.and_then(|d| d.get(0))
                .and_then(|d| d.get("message_id")),
        )
        .or_else(|| str_of(data.and_then(|d| d.get("message_id"))))
        .or_else(|| str_of(v.get("message_id")))
        .or_else(|| str_of(v.get("id")))
    });
    match id {
        Some(id) => Ok(id.to_owned().into()),
        None => Err(SendFailure::outcome_unknown(format!(
            "HTTP {status} from Kaleyra without a message id"
        ))),
    }
}

#[async_trait]
impl MessagingProvider for KaleyraProvider {
    async fn send(
        &self,
        account: &Account,
        msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        let Some(sender) = KaleyraSender::parse(&account.sender_id) else {
            tracing::warn!(account = %account.id, "kaleyra sender_id is not <sid>:<from>");
            return Err(SendFailure {
                class: FailureClass::Campaign,
                code: None,
                reason: "Kaleyra sender_id must be <sid>:<from> (account SID and business number)"
                    .to_owned(),
            });
        };
        let key = super::credential(&*self.secrets, account, "Kaleyra").await?;
        let url = self.messages_url(&sender);
        let to = msg.to.masked();
        tracing::debug!(account = %account.id, to = %to, template = %msg.template, "kaleyra send");
        let req = self
            .http
            .post(&url)
            .header(API_KEY_HEADER, key)
            .json(&kaleyra_body(msg));
        super::send_request(req, "Kaleyra", account, &to, interpret_kaleyra_response).await
    }
}

// ---------------------------------------------------------------------------------------
// Callbacks

/// The shared-token check of a Kaleyra callback, in constant time: `given` (the
/// [`TOKEN_QUERY_PARAM`] query parameter, else the [`TOKEN_HEADER`] header) must equal
/// the configured `expected`. An empty `expected` (a configuration error anyone could
/// match) or a missing token fails.
pub fn verify_kaleyra_token(expected: &str, given: Option<&str>) -> bool {
    if expected.is_empty() {
        return false;
    }
    let Some(given) = given else { return false };
    bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes()))
}

/// The callback token of one Kaleyra account SID: hex HMAC-SHA256 of the SID under the
/// deployment's callback secret. A tenant registers `/webhooks/kaleyra?sid=<sid>&token=<this>`
/// with Kaleyra; it opens the route for that SID only, so one tenant's token cannot post
/// another tenant's statuses or customer messages. The secret itself is never a token.
pub fn callback_token(secret: &str, sid: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"kaleyra-callback:");
    mac.update(sid.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Epoch seconds (string or number) or RFC 3339.
fn time_of(v: Option<&Value>) -> Option<Time> {
    let v = v?;
    if let Some(secs) = as_i64_lenient(v) {
        return chrono::DateTime::from_timestamp(secs, 0);
    }
    chrono::DateTime::parse_from_rfc3339(v.as_str()?.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The failure a FAILED or NOT-SENT callback carries: a Meta error of the status item
/// (`errors[0]`), else Kaleyra's own (`error.code`/`error_code`/`code` with a message).
fn failure_of(v: &Value, meta_status: Option<&Value>, not_sent: bool) -> StatusKind {
    if let Some(err) = meta_status
        .and_then(|s| s.get("errors"))
        .and_then(|e| e.get(0))
    {
        let code = err.get("code").and_then(as_i64_lenient);
        let text = str_of(err.get("error_data").and_then(|d| d.get("details")))
            .or_else(|| str_of(err.get("title")))
            .or_else(|| str_of(err.get("message")))
            .unwrap_or("");
        let reason = match code {
            Some(c) => meta_reason(c, text),
            None if text.is_empty() => "delivery failed".to_owned(),
            None => redact_numbers(text),
        };
        return StatusKind::Failed {
            code,
            reason,
            class: None,
        };
    }
    let error_obj = v.get("error").filter(|e| e.is_object());
    if let Some(code) = error_obj
        .and_then(|e| e.get("code"))
        .filter(|c| c.is_number())
        .and_then(as_i64_lenient)
    {
        return StatusKind::Failed {
            code: Some(code),
            reason: meta_reason(code, error_obj.map_or("", error_message)),
            class: None,
        };
    }
    let kcode = kaleyra_code(error_obj.and_then(|e| e.get("code")))
        .or_else(|| kaleyra_code(v.get("error_code")))
        .or_else(|| kaleyra_code(v.get("code")).filter(|c| !c.eq_ignore_ascii_case("WA200")));
    let message = error_obj
        .map(error_message)
        .filter(|m| !m.is_empty())
        .or_else(|| str_of(v.get("reason")))
        .or_else(|| str_of(v.get("message")))
        .unwrap_or("");
    let reason = match kcode {
        Some(c) => SendFailure::kaleyra(c, message).reason,
        None if !message.is_empty() => redact_numbers(message),
        None if not_sent => "not sent by Kaleyra".to_owned(),
        None => "delivery failed".to_owned(),
    };
    StatusKind::Failed {
        code: None,
        reason,
        class: None,
    }
}

/// Statuses and customer messages of one Kaleyra v2 callback (PROVIDERS.md section 5).
///
/// The top-level `status` (SENT, DELIVERED, READ, FAILED, NOT-SENT, any case; else the
/// status of `meta_object.value.statuses[0]`) gives one [`StatusUpdate`]: message id from
/// `message_id`, `extra_info.message_id` or the Meta status id; time from the Meta status
/// `timestamp`, else a top-level `timestamp`/`created_at`, else now (NOT-SENT never
/// reached Meta); entry from `extra_info.ref` (else the Meta status's
/// `biz_opaque_callback_data`) decoded with [`EntryRef::decode`]. FAILED and NOT-SENT are
/// [`StatusKind::Failed`] with the Meta or Kaleyra reason. Customer messages in
/// `meta_object.value.messages` are parsed as Meta's. Unknown statuses, callbacks without
/// a message id, and anything else give nothing; only a body that is not JSON is an error.
pub fn parse_kaleyra_callback(body: &[u8]) -> Result<Vec<Inbound>, serde_json::Error> {
    parse_kaleyra_callback_received(body, chrono::Utc::now())
}

/// [`parse_kaleyra_callback`] for a callback received at `received_at`: a status without
/// a time of its own is dated when the webhook received it, not when a worker applies it.
pub fn parse_kaleyra_callback_received(
    body: &[u8],
    received_at: crate::domain::Time,
) -> Result<Vec<Inbound>, serde_json::Error> {
    let v: Value = serde_json::from_slice(body)?;
    let mut out = Vec::new();
    let value = v
        .get("meta_object")
        .and_then(|m| m.get("value"))
        .filter(|x| x.is_object());
    let meta_status = value.and_then(|x| x.get("statuses")).and_then(|s| s.get(0));
    let extra = v.get("extra_info");
    let status = str_of(v.get("status"))
        .or_else(|| str_of(meta_status.and_then(|s| s.get("status"))))
        .map(|s| s.to_ascii_uppercase().replace('_', "-"));
    let kind = match status.as_deref() {
        Some("SENT") => Some(StatusKind::Sent),
        Some("DELIVERED") => Some(StatusKind::Delivered),
        Some("READ") => Some(StatusKind::Read),
        Some("FAILED") => Some(failure_of(&v, meta_status, false)),
        Some("NOT-SENT" | "NOTSENT") => Some(failure_of(&v, meta_status, true)),
        _ => None,
    };
    let message_id = str_of(v.get("message_id"))
        .or_else(|| str_of(extra.and_then(|e| e.get("message_id"))))
        .or_else(|| str_of(meta_status.and_then(|s| s.get("id"))));
    if let (Some(status), Some(message_id)) = (kind, message_id) {
        let at = time_of(meta_status.and_then(|s| s.get("timestamp")))
            .or_else(|| time_of(v.get("timestamp")))
            .or_else(|| time_of(v.get("created_at")))
            .unwrap_or(received_at);
        let (entry, attempt) = str_of(extra.and_then(|e| e.get("ref")))
            .and_then(EntryRef::decode_attempt)
            .or_else(|| {
                str_of(meta_status.and_then(|s| s.get("biz_opaque_callback_data")))
                    .and_then(EntryRef::decode_attempt)
            })
            .map_or((None, None), |(r, a)| (Some(r), a));
        out.push(Inbound::Status(StatusUpdate {
            recipient: None,
            message_id: message_id.to_owned(),
            status,
            at,
            entry,
            attempt,
            sender_id: None,
            user_id: None,
        }));
    }
    if let Some(value) = value.filter(|x| x.get("messages").is_some()) {
        // Our number as Kaleyra knows it (the `<from>` of `<sid>:<from>`), not Meta's
        // phone_number_id: see [`qualify_kaleyra_senders`].
        let business: Option<String> = str_of(
            value
                .get("metadata")
                .and_then(|m| m.get("display_phone_number")),
        )
        .map(|n| n.chars().filter(char::is_ascii_digit).collect())
        .filter(|n: &String| !n.is_empty());
        let (_, messages) = parse_messages_value(value.clone());
        out.extend(messages.into_iter().map(|mut m| {
            if let Some(b) = &business {
                m.sender_id = b.clone();
            }
            Inbound::Message(m)
        }));
    }
    Ok(out)
}

/// Customer messages of a Kaleyra callback name our number as `metadata.
/// display_phone_number` (digits), because the callback does not carry the account SID.
/// Interactions are keyed by `Account::sender_id` (`<sid>:<from>`), so the webhook, which
/// knows the SID from the callback URL it registered, rewrites each message's
/// `sender_id` to `<sid>:<number>` with this before handing them to the inbox.
///
/// Statuses carry no number of ours at all: they come from the SID, which only its
/// owner's entries may take.
pub fn qualify_kaleyra_senders(items: &mut [Inbound], sid: &str) {
    for item in items {
        match item {
            Inbound::Message(m) if !m.sender_id.contains(':') => {
                m.sender_id = format!("{sid}:{}", m.sender_id);
            }
            Inbound::Status(s) => s.sender_id = Some(sid.to_owned()),
            _ => {}
        }
    }
}

/// The callback check of one Kaleyra account: `given` must be [`callback_token`] of `sid`
/// under the deployment's `secret`, in constant time. No SID, no secret or no token fails.
pub fn verify_kaleyra_callback(secret: &str, sid: Option<&str>, given: Option<&str>) -> bool {
    match sid.map(str::trim).filter(|s| !s.is_empty()) {
        Some(sid) if !secret.is_empty() => {
            verify_kaleyra_token(&callback_token(secret, sid), given)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_id_is_sid_and_number() {
        assert_eq!(
            KaleyraSender::parse("HXIN123:+919800000000"),
            Some(KaleyraSender {
                sid: "HXIN123".into(),
                from: "919800000000".into()
            })
        );
        for bad in [
            "",
            "HXIN123",
            ":9198",
            "HX/1:919800000000",
            "HX:abc",
            "HX:91 98",
        ] {
            assert_eq!(KaleyraSender::parse(bad), None, "{bad}");
        }
    }
}
