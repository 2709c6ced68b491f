//! Twilio Programmable Messaging (PROVIDERS.md section 6): sending SMS, verifying and
//! reading Twilio's signed callbacks (delivery statuses and inbound messages).
//!
//! - **Account:** `Account::sender_id` is `<AccountSid>:<From>`
//!   ([`crate::domain::account::TwilioSender`]); `token_ref` names the account's auth
//!   token, the Basic-auth password of the API and the key of `X-Twilio-Signature`.
//! - **Send:** `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded,
//!   Basic auth; `To`, `From` or `MessagingServiceSid`, `Body`, `StatusCallback`. The
//!   callback URL names the tenant and account (whose token verifies it) and carries the
//!   entry and attempt as `ref`, Twilio's way of echoing callback data.
//! - **Errors:** Twilio's numeric codes, classified as data by
//!   [`crate::domain::outcome::classify_twilio`]; a 5xx or an answer without a `sid` may
//!   follow an accepted message (outcome unknown).
//! - **Callbacks:** [`signature`] is Base64(HMAC-SHA1(auth token, the full URL followed by
//!   every POST parameter's name and value, sorted by name)); [`verify_signature`]
//!   compares it in constant time. [`parse_callback`] turns a verified callback into
//!   statuses or an inbound message.
//!
//! Nothing here logs a token or a full phone number.

use crate::domain::account::{Account, TwilioFrom, TwilioSender};
use crate::domain::inbound::{EntryRef, Inbound, InboundMessage, StatusKind, StatusUpdate};
use crate::domain::outcome::{classify_twilio, twilio_reason, FailureClass, SendFailure};
use crate::domain::phone::PhoneNumber;
use crate::domain::Time;
use crate::ports::{Accepted, MessagingProvider, OutboundSms, OutboundTemplate, Secrets};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The header Twilio signs its callbacks in.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// The query parameter of the status callback URL that carries the entry and attempt.
pub const REF_PARAM: &str = "ref";
/// Twilio's limit on a message body, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// `MessagingProvider` over Twilio's Messages API (SMS only).
#[derive(Clone)]
pub struct TwilioProvider {
    http: reqwest::Client,
    /// Without a trailing slash, e.g. `https://api.twilio.com`.
    base_url: String,
    /// Where Twilio posts status callbacks: the public base URL of the webhook routes
    /// (`/webhooks/twilio/...` is appended); none sends without a `StatusCallback`.
    callback_base: Option<String>,
    secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for TwilioProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioProvider")
            .field("base_url", &self.base_url)
            .field("callback_base", &self.callback_base)
            .finish_non_exhaustive()
    }
}

/// The path of an account's callbacks: `/webhooks/twilio/{tenant}/{account_id}`.
pub fn callback_path(account: &Account) -> String {
    format!("/webhooks/twilio/{}/{}", account.tenant, account.id)
}

/// The status callback URL of one message: the account's callback path under `base`,
/// with the entry and attempt as [`REF_PARAM`].
pub fn status_callback_url(base: &str, account: &Account, callback_data: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(REF_PARAM, callback_data)
        .finish();
    format!(
        "{}{}?{query}",
        base.trim_end_matches('/'),
        callback_path(account)
    )
}

impl TwilioProvider {
    pub fn new(
        base_url: impl Into<String>,
        callback_base: Option<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        Self::with_client(super::http_client(), base_url, callback_base, secrets)
    }

    pub fn with_client(
        http: reqwest::Client,
        base_url: impl Into<String>,
        callback_base: Option<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        TwilioProvider {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            callback_base: callback_base.filter(|b| !b.trim().is_empty()),
            secrets,
        }
    }

    /// `{base}/2010-04-01/Accounts/{AccountSid}/Messages.json`.
    pub fn messages_url(&self, account_sid: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
            self.base_url
        )
    }
}

/// The form of one send, in the order Twilio documents it.
pub fn send_form(
    sender: &TwilioSender,
    msg: &OutboundSms,
    status_callback: Option<String>,
) -> Vec<(&'static str, String)> {
    let mut form = vec![("To", format!("+{}", msg.to.as_str()))];
    match &sender.from {
        TwilioFrom::Number(n) => form.push(("From", n.clone())),
        TwilioFrom::Service(s) => form.push(("MessagingServiceSid", s.clone())),
    }
    form.push(("Body", msg.body.clone()));
    if let Some(cb) = status_callback {
        form.push(("StatusCallback", cb));
    }
    form
}

#[derive(Deserialize)]
struct TwilioAnswer {
    sid: Option<String>,
    code: Option<i64>,
    message: Option<String>,
    error_code: Option<i64>,
    error_message: Option<String>,
}

/// Twilio's answer to a send: the message's `sid`, or the classified failure.
pub fn interpret_response(status: u16, body: &[u8]) -> Result<Accepted, SendFailure> {
    let answer: Option<TwilioAnswer> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let a = answer.as_ref();
        if let Some(code) = a.and_then(|a| a.error_code) {
            let msg = a.and_then(|a| a.error_message.as_deref()).unwrap_or("");
            return Err(SendFailure::twilio(code, msg));
        }
        return match a.and_then(|a| a.sid.clone()) {
            // Twilio's `status` here is always `queued` or `accepted`: no news.
            Some(sid) if !sid.trim().is_empty() => Ok(sid.into()),
            _ => Err(SendFailure::outcome_unknown(format!(
                "HTTP {status} from Twilio without a message sid"
            ))),
        };
    }
    let code = answer.as_ref().and_then(|a| a.code);
    let message = answer
        .as_ref()
        .and_then(|a| a.message.as_deref())
        .unwrap_or("");
    match (status, code) {
        // A 5xx may follow a message Twilio took.
        (500.., _) => Err(SendFailure::outcome_unknown(format!(
            "HTTP {status} from Twilio: {}",
            twilio_reason(code.unwrap_or(0), message)
        ))),
        (_, Some(code)) => Err(SendFailure::twilio(code, message)),
        (401 | 403, None) => Err(SendFailure {
            class: FailureClass::Campaign,
            code: None,
            reason: format!("Twilio refused the credentials (HTTP {status})"),
        }),
        (429, None) => Err(SendFailure::twilio(20429, "Too Many Requests")),
        (_, None) => Err(SendFailure {
            class: FailureClass::Temporary,
            code: None,
            reason: format!("HTTP {status} from Twilio without an error code"),
        }),
    }
}

#[async_trait]
impl MessagingProvider for TwilioProvider {
    async fn send(
        &self,
        _account: &Account,
        _msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        Err(SendFailure {
            class: FailureClass::Campaign,
            code: None,
            reason: "a twilio account sends SMS, not WhatsApp templates".to_owned(),
        })
    }

    async fn send_sms(
        &self,
        account: &Account,
        msg: &OutboundSms,
    ) -> Result<Accepted, SendFailure> {
        let Some(sender) = TwilioSender::parse(&account.sender_id) else {
            tracing::warn!(account = %account.id, "twilio sender_id is not <AccountSid>:<From>");
            return Err(SendFailure {
                class: FailureClass::Campaign,
                code: None,
                reason: "Twilio sender_id must be <AccountSid>:<From>".to_owned(),
            });
        };
        let token = super::credential(&*self.secrets, account, "Twilio").await?;
        // A message of no entry (an answer to HELP) asks for no statuses.
        let callback = self
            .callback_base
            .as_deref()
            .filter(|_| !msg.callback_data.is_empty())
            .map(|b| status_callback_url(b, account, &msg.callback_data));
        let form = send_form(&sender, msg, callback);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let to = msg.to.masked();
        tracing::debug!(account = %account.id, to = %to, segments = msg.segments, "twilio send");
        let req = self
            .http
            .post(self.messages_url(&sender.account_sid))
            .basic_auth(&sender.account_sid, Some(token))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        super::send_request(req, "Twilio", account, &to, interpret_response).await
    }
}

// ---------------------------------------------------------------------------------------
// Callbacks

/// `X-Twilio-Signature` of a callback: Base64(HMAC-SHA1(auth token, `url` followed by
/// each parameter's name and value, sorted by name, then value)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the signature of the callback, in constant time. An empty token
/// (a configuration error anyone could match) or a missing header fails.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    given: Option<&str>,
) -> bool {
    let Some(given) = given.map(str::trim).filter(|g| !g.is_empty()) else {
        return false;
    };
    if auth_token.is_empty() {
        return false;
    }
    let expected = signature(auth_token, url, params);
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The parameters of a form-encoded body, in order.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A verified callback as the inbound queue carries it: the callback's parameters and
/// the `ref` of its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    pub params: Vec<(String, String)>,
}

/// A callback's statuses or inbound message. `sender_id` is the verified account's (the
/// URL named it and its token signed it): statuses apply only to that number's owner's
/// entries, and a reply finds the interaction on it. `at` is when it was received: Twilio's
/// callbacks carry no time.
pub fn parse_callback(cb: &Callback, sender_id: &str, at: Time) -> Vec<Inbound> {
    let get = |k: &str| {
        cb.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let Some(sid) = get("MessageSid").or_else(|| get("SmsSid")) else {
        return Vec::new();
    };
    if let Some(status) = get("MessageStatus") {
        let kind = match status.to_ascii_lowercase().as_str() {
            "sent" => StatusKind::Sent,
            "delivered" => StatusKind::Delivered,
            "read" => StatusKind::Read,
            "failed" | "undelivered" => {
                let code = get("ErrorCode").and_then(|c| c.parse::<i64>().ok());
                let reason = match code {
                    Some(c) => twilio_reason(c, get("ErrorMessage").unwrap_or("")),
                    None => format!("{status} by Twilio"),
                };
                // Twilio's codes, not Meta's: 30xxx and 21610 arrive here, not in the
                // send's answer.
                let class = code.map(classify_twilio);
                StatusKind::Failed {
                    code,
                    reason,
                    class,
                }
            }
            // queued, accepted, scheduled, sending, canceled: not a delivery fact.
            _ => return Vec::new(),
        };
        let (entry, attempt) = match cb.r#ref.as_deref().and_then(EntryRef::decode_attempt) {
            Some((r, a)) => (Some(r), a),
            None => (None, None),
        };
        return vec![Inbound::Status(StatusUpdate {
            message_id: sid.to_owned(),
            status: kind,
            at,
            entry,
            attempt,
            sender_id: Some(sender_id.to_owned()),
            user_id: None,
            recipient: get("To").and_then(|t| PhoneNumber::parse(t).ok()),
        })];
    }
    let Some(from) = get("From").and_then(|f| PhoneNumber::parse(f).ok()) else {
        return Vec::new();
    };
    vec![Inbound::Message(InboundMessage {
        sms: true,
        sender_id: sender_id.to_owned(),
        from,
        message_id: sid.to_owned(),
        at,
        context_id: None,
        text: get("Body").map(str::to_owned),
        button: None,
        user_id: None,
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    /// Twilio's own worked example (twilio.com/docs/usage/webhooks/webhooks-security).
    #[test]
    fn the_signature_matches_twilios_documented_example() {
        let params = vec![
            p("CallSid", "CA1234567890ABCDE"),
            p("Caller", "+12349013030"),
            p("Digits", "1234"),
            p("From", "+12349013030"),
            p("To", "+18005551212"),
        ];
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = signature("12345", url, &params);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_signature("12345", url, &params, Some(&sig)));
        assert!(!verify_signature("12346", url, &params, Some(&sig)));
        assert!(!verify_signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1",
            &params,
            Some(&sig)
        ));
        let mut changed = params.clone();
        changed[2].1 = "1235".into();
        assert!(!verify_signature("12345", url, &changed, Some(&sig)));
        assert!(!verify_signature("12345", url, &params, None));
        assert!(!verify_signature("", url, &params, Some(&sig)));
    }

    #[test]
    fn answers_are_read_as_a_sid_or_a_classified_failure() {
        let ok =
            br#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","error_code":null}"#;
        assert_eq!(
            interpret_response(201, ok).unwrap().message_id,
            "SM0123456789abcdef0123456789abcdef"
        );
        let bad = br#"{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","status":400}"#;
        let f = interpret_response(400, bad).unwrap_err();
        assert_eq!((f.class, f.code), (FailureClass::Permanent, Some(21211)));
        let stop =
            br#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}"#;
        assert_eq!(
            interpret_response(400, stop).unwrap_err().class,
            FailureClass::OptedOut
        );
        let auth = br#"{"code":20003,"message":"Authenticate","status":401}"#;
        assert_eq!(
            interpret_response(401, auth).unwrap_err().class,
            FailureClass::Campaign
        );
        let slow = br#"{"code":20429,"message":"Too Many Requests","status":429}"#;
        let f = interpret_response(429, slow).unwrap_err();
        assert!(f.is_throttling() && f.class == FailureClass::Temporary);
        assert_eq!(
            interpret_response(503, b"").unwrap_err().class,
            FailureClass::Unknown
        );
        assert_eq!(
            interpret_response(201, b"{}").unwrap_err().class,
            FailureClass::Unknown
        );
    }

    #[test]
    fn callbacks_become_statuses_of_their_entry_or_inbound_messages() {
        let at = chrono::Utc::now();
        let r = "ce1|acme|cmp_1|3|14155550100|2";
        let status = Callback {
            r#ref: Some(r.into()),
            params: vec![
                p("MessageSid", "SM1"),
                p("MessageStatus", "undelivered"),
                p("ErrorCode", "30003"),
                p("To", "+14155550100"),
            ],
        };
        let ev = parse_callback(&status, "AC:+1", at);
        let Inbound::Status(s) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(s.entry.as_ref().unwrap().campaign_id, "cmp_1");
        assert_eq!(s.attempt, Some(2));
        assert_eq!(s.sender_id.as_deref(), Some("AC:+1"));
        assert!(matches!(
            &s.status,
            StatusKind::Failed {
                code: Some(30003),
                ..
            }
        ));
        let queued = Callback {
            r#ref: None,
            params: vec![p("MessageSid", "SM1"), p("MessageStatus", "queued")],
        };
        assert!(parse_callback(&queued, "AC:+1", at).is_empty());
        let inbound = Callback {
            r#ref: None,
            params: vec![
                p("MessageSid", "SM9"),
                p("From", "+14155550100"),
                p("To", "+15005550006"),
                p("Body", "STOP"),
            ],
        };
        let ev = parse_callback(&inbound, "AC:+1", at);
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (m.text.as_deref(), m.sender_id.as_str()),
            (Some("STOP"), "AC:+1")
        );
    }
}
