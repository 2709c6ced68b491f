//! Idempotency keys for operator requests that send a message outside a campaign (the
//! recontact template, R5.5): a client that lost the answer (a timeout, a dropped
//! connection) sends the same request again with the same key and gets the first answer,
//! never a second message. The header and its rules follow the IETF draft
//! "The Idempotency-Key HTTP Header Field": a key reused with another request is a 422,
//! one whose first request has not answered yet is a 409.

use super::{DomainError, Time};
use serde::{Deserialize, Serialize};

/// The header a client names its request with.
pub const HEADER: &str = "Idempotency-Key";
/// Longest key.
pub const MAX_KEY_CHARS: usize = 255;
/// How long a key's answer is kept and replayed (as Stripe does): a client retries
/// within minutes; a day later the same key starts a new request.
pub const KEEP: chrono::Duration = chrono::Duration::hours(24);

/// A client's idempotency key: 1 to 255 visible ASCII characters (a UUID is typical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        if s.is_empty() || s.len() > MAX_KEY_CHARS || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::invalid(
                HEADER,
                format!("must be 1 to {MAX_KEY_CHARS} visible ASCII characters (e.g. a UUID)"),
            ));
        }
        Ok(IdempotencyKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The record of one keyed request: taken before anything is sent, finished with the
/// answer. A request that stopped midway (the process died around the provider call)
/// stays unfinished: whether its message went out is unknown, so the key never sends
/// again; it answers 409 until the record expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedRequest<T> {
    pub tenant: String,
    pub key: IdempotencyKey,
    /// What the request asked for (a digest of its operation, path and body): the same key
    /// with another request is refused.
    pub fingerprint: String,
    pub created_at: Time,
    /// The answer, once there is one.
    pub answer: Option<T>,
    #[serde(default)]
    pub version: u64,
}

impl<T: Clone> KeyedRequest<T> {
    pub fn new(tenant: &str, key: IdempotencyKey, fingerprint: String, now: Time) -> Self {
        KeyedRequest {
            tenant: tenant.to_owned(),
            key,
            fingerprint,
            created_at: now,
            answer: None,
            version: 0,
        }
    }

    /// What a request with `fingerprint` gets from this earlier use of its key: the first
    /// answer again, a 422 when the key named another request, or a 409 while the first
    /// has no answer (still running, or stopped not knowing whether its message went out).
    pub fn replay(&self, fingerprint: &str) -> Result<T, DomainError> {
        if self.fingerprint != fingerprint {
            return Err(DomainError::invalid(
                HEADER,
                "was already used for a different request; use a new key for a new request",
            ));
        }
        self.answer.clone().ok_or_else(unfinished)
    }
}

/// The answer to a request whose key another request holds without an answer.
pub fn unfinished() -> DomainError {
    DomainError::Conflict(format!(
        "a request with this {HEADER} has not finished, or stopped without knowing whether \
         its message went out; it is not sent again (the key is kept for {} hours)",
        KEEP.num_hours()
    ))
}

impl<T> KeyedRequest<T> {
    /// When the key may be used for a new request.
    pub fn expires_at(&self) -> Time {
        self.created_at + KEEP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
        assert_eq!(IdempotencyKey::parse(" k1 ").unwrap().as_str(), "k1");
        for bad in ["", "  ", "a b", "clé", &"x".repeat(256)] {
            let e = IdempotencyKey::parse(bad).unwrap_err();
            assert!(
                matches!(&e, DomainError::Invalid { field, .. } if field == HEADER),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn a_used_key_replays_its_answer_only_for_the_same_request() {
        let now = chrono::Utc::now();
        let key = IdempotencyKey::parse("k1").unwrap();
        let mut r: KeyedRequest<String> = KeyedRequest::new("acme", key, "fp1".into(), now);
        assert!(matches!(r.replay("fp1"), Err(DomainError::Conflict(_))));
        r.answer = Some("sent".into());
        assert_eq!(r.replay("fp1"), Ok("sent".into()));
        assert!(matches!(
            r.replay("fp2"),
            Err(DomainError::Invalid { field, .. }) if field == HEADER
        ));
        assert_eq!(r.expires_at(), now + KEEP);
    }
}
