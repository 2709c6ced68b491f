//! What a provider's answer means for an entry and its campaign (R4.7), kept as data.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// This contact cannot get this message: FAILED with the provider's reason.
    Permanent,
    /// Worth another attempt later: RETRY.
    Temporary,
    /// The account or template is broken: the campaign pauses itself.
    Campaign,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFailure {
    pub class: FailureClass,
    /// The provider's error code, when it gave one.
    pub code: Option<i64>,
    pub reason: String,
}

/// Meta Cloud API error codes (PROVIDERS.md section 3).
pub fn classify_meta(code: i64) -> FailureClass {
    use FailureClass::*;
    match code {
        130429 | 131056 | 131049 | 131000 | 131016 | 1 | 2 | 131057 | 4 | 80007 => Temporary,
        131026 | 131050 | 130472 | 131047 | 131021 | 131030 | 132005 | 132008 | 132012 => Permanent,
        131048
        | 132000
        | 132001
        | 132007
        | 132015
        | 132016
        | 0
        | 190
        | 3
        | 10
        | 200..=299
        | 131031
        | 368
        | 130497
        | 131042
        | 131064
        | 133010
        | 100
        | 131008
        | 131009 => Campaign,
        // An unknown code must not burn through the audience: treat it as temporary so the
        // entry waits for an operator's retry instead of being marked failed forever.
        _ => Temporary,
    }
}

/// The reason recorded on the entry for a Meta error (R4.7 wording).
pub fn meta_reason(code: i64, message: &str) -> String {
    match code {
        131026 => "Message Undeliverable".to_owned(),
        _ if message.is_empty() => format!("provider error {code}"),
        _ => format!("{message} ({code})"),
    }
}

impl SendFailure {
    pub fn meta(code: i64, message: &str) -> Self {
        SendFailure {
            class: classify_meta(code),
            code: Some(code),
            reason: meta_reason(code, message),
        }
    }

    /// Network errors, timeouts and 5xx answers without a readable body.
    pub fn transport(reason: impl Into<String>) -> Self {
        SendFailure {
            class: FailureClass::Temporary,
            code: None,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r4_7_meta_codes_are_classified() {
        assert_eq!(classify_meta(131026), FailureClass::Permanent);
        assert_eq!(classify_meta(130429), FailureClass::Temporary);
        assert_eq!(classify_meta(190), FailureClass::Campaign);
        assert_eq!(classify_meta(132015), FailureClass::Campaign);
        assert_eq!(
            SendFailure::meta(131026, "Message undeliverable").reason,
            "Message Undeliverable"
        );
    }
}
