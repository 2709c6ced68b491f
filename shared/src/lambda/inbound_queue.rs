//! The inbound queue between the webhook function and the inbound worker (R6.1 at scale).
//!
//! The webhook verifies a provider's callback (Meta's signature over the raw body,
//! Kaleyra's token) and puts the verified body on the inbound queue as one message, then
//! answers at once; the inbound worker parses and applies it later, in batches. A message
//! is one line of JSON metadata ([`Header`]: format version, provider, receive time and
//! Kaleyra's account SID) followed by `\n` and the raw body exactly as received, so the
//! queue holds what the provider signed, readable in the console, and a body of up to
//! [`MAX_BODY_BYTES`] always fits SQS's 256 KiB (JSON-escaping the body into a field
//! could not promise that).

use crate::domain::inbound::Inbound;
use crate::domain::Time;
use crate::providers::{kaleyra, meta, twilio};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The largest webhook body the webhook accepts (larger: 413). Meta's and Kaleyra's
/// callbacks are a few kilobytes.
pub const MAX_BODY_BYTES: usize = 200 * 1024;
/// SQS's limit on a message body.
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The message format this code writes and reads. A `u64`, as the header's `v` is read:
/// any version a newer writer may put there is compared and reported as it is.
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookProvider {
    Meta,
    Kaleyra,
    /// A verified Twilio callback, as [`twilio::Callback`] JSON; `sid` is the account's
    /// `sender_id`.
    Twilio,
}

/// The metadata line of a queued webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub v: u64,
    pub provider: WebhookProvider,
    /// When the webhook function received it (wall clock; for diagnosis, never a rule).
    pub received_at: Time,
    /// Kaleyra: the account SID named by the callback URL (`?sid=`); Twilio: the verified
    /// account's `sender_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// A verified webhook body on its way to the inbound worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedWebhook {
    pub header: Header,
    /// The raw body as received.
    pub body: String,
}

/// Why a queued message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a queued webhook at all: delivering it again cannot help.
    #[error("not a queued webhook: {0}")]
    Malformed(String),
    /// Written in a newer format (a newer webhook function during a deploy): a later
    /// delivery, once this worker is updated too, can read it.
    #[error("queued webhook format {0} is newer than this worker's")]
    Newer(u64),
}

impl QueuedWebhook {
    pub fn new(
        provider: WebhookProvider,
        received_at: Time,
        sid: Option<String>,
        body: String,
    ) -> Self {
        QueuedWebhook {
            header: Header {
                v: FORMAT_VERSION,
                provider,
                received_at,
                sid,
            },
            body,
        }
    }

    /// The message body: the header line, `\n`, the raw body. U+FFFE and U+FFFF, which
    /// SQS refuses, can only be inside JSON strings of a body that is JSON, so they are
    /// written as `\uXXXX` escapes, which parse to the same value (the other characters
    /// SQS refuses are never in JSON: see [`json_text`]).
    pub fn encode(&self) -> String {
        let header = serde_json::to_string(&self.header).expect("header serialises");
        format!("{header}\n{}", sqs_safe(&self.body))
    }

    pub fn decode(message: &str) -> Result<Self, DecodeError> {
        let (line, body) = message
            .split_once('\n')
            .ok_or_else(|| DecodeError::Malformed("no header line".into()))?;
        let raw: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| DecodeError::Malformed(format!("header is not JSON: {e}")))?;
        match raw.get("v").map(|v| (v, v.as_u64())) {
            Some((_, Some(v))) if v > FORMAT_VERSION => return Err(DecodeError::Newer(v)),
            Some((_, Some(_))) => {}
            Some((v, None)) => {
                return Err(DecodeError::Malformed(format!(
                    "header version {v} is not a format number"
                )))
            }
            None => return Err(DecodeError::Malformed("header has no version".into())),
        }
        let header: Header = serde_json::from_value(raw)
            .map_err(|e| DecodeError::Malformed(format!("header: {e}")))?;
        Ok(QueuedWebhook {
            header,
            body: body.to_owned(),
        })
    }

    /// The provider-neutral events of the body; an error when the body is not JSON.
    pub fn events(&self) -> Result<Vec<Inbound>, serde_json::Error> {
        match self.header.provider {
            WebhookProvider::Meta => meta::parse_webhook(self.body.as_bytes()),
            WebhookProvider::Kaleyra => {
                let mut events = kaleyra::parse_kaleyra_callback_received(
                    self.body.as_bytes(),
                    self.header.received_at,
                )?;
                if let Some(sid) = self.header.sid.as_deref() {
                    kaleyra::qualify_kaleyra_senders(&mut events, sid);
                }
                Ok(events)
            }
            WebhookProvider::Twilio => {
                let cb: twilio::Callback = serde_json::from_str(&self.body)?;
                let sender = self.header.sid.as_deref().unwrap_or_default();
                Ok(twilio::parse_callback(&cb, sender, self.header.received_at))
            }
        }
    }
}

/// The body as text when it may be JSON: UTF-8 without control characters other than
/// tab and line breaks (JSON allows no others, not even inside strings). `None` means it
/// cannot parse, so there is nothing to queue.
pub fn json_text(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text
        .chars()
        .any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
    {
        return None;
    }
    Some(text.to_owned())
}

fn sqs_safe(s: &str) -> Cow<'_, str> {
    let refused = |c: char| matches!(c, '\u{FFFE}' | '\u{FFFF}');
    if !s.chars().any(refused) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if refused(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> Time {
        chrono::Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
    }

    #[test]
    fn a_queued_webhook_round_trips_with_its_body_verbatim() {
        let body = "{\"object\":\"whatsapp_business_account\",\n \"entry\":[]}".to_owned();
        let w = QueuedWebhook::new(
            WebhookProvider::Kaleyra,
            at(),
            Some("SID1".into()),
            body.clone(),
        );
        let encoded = w.encode();
        assert!(
            encoded.ends_with(&body),
            "the raw body follows the header line"
        );
        assert_eq!(QueuedWebhook::decode(&encoded), Ok(w));
    }

    #[test]
    fn characters_sqs_refuses_are_escaped_to_the_same_json_value() {
        let body = "{\"text\":\"a b\u{FFFF}\u{FFFE}\"}".to_owned();
        let w = QueuedWebhook::new(WebhookProvider::Meta, at(), None, body.clone());
        let decoded = QueuedWebhook::decode(&w.encode()).unwrap();
        assert_ne!(decoded.body, body);
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(parse(&decoded.body), parse(&body));
        assert!(!decoded.body.contains('\u{FFFF}'));
    }

    #[test]
    fn a_body_that_cannot_be_json_is_not_text_to_queue() {
        assert_eq!(
            json_text(b"{\"a\":\n\t1}").as_deref(),
            Some("{\"a\":\n\t1}")
        );
        assert_eq!(json_text(b"{\"a\":\"\x01\"}"), None);
        assert_eq!(json_text(&[b'{', 0xff, b'}']), None);
    }

    #[test]
    fn garbage_is_malformed_and_a_newer_format_is_kept_for_later() {
        assert!(matches!(
            QueuedWebhook::decode("not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            QueuedWebhook::decode("{\"provider\":\"meta\"}\n{}"),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            QueuedWebhook::decode("{\"v\":2,\"provider\":\"whatsapp_v2\"}\n{}"),
            Err(DecodeError::Newer(2))
        );
        // Beyond u32: the real version, never a wrapped one.
        let beyond = "{\"v\":4294967296,\"provider\":\"meta\"}\n{}";
        assert_eq!(
            QueuedWebhook::decode(beyond),
            Err(DecodeError::Newer(1 << 32))
        );
        assert_eq!(
            QueuedWebhook::decode(&format!(
                "{{\"v\":{},\"provider\":\"meta\"}}\n{{}}",
                u64::MAX
            )),
            Err(DecodeError::Newer(u64::MAX))
        );
    }
}
