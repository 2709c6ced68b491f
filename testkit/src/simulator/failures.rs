//! Configured failures: which numbers fail, how, and the error bodies Meta and Kaleyra
//! answer with (the table in the module docs of `simulator`).

use super::*;

/// How a configured number fails; each kind has a default code that
/// [`shared::domain::outcome::classify_meta`] / `classify_kaleyra` classify as that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimFailureKind {
    /// Meta `131026` "Message undeliverable" (HTTP 400); Kaleyra `E413` (HTTP 400).
    Permanent,
    /// Meta `131000` "Something went wrong" (HTTP 500); Kaleyra `WA500` (HTTP 500).
    Temporary,
    /// Meta `132001` "Template name does not exist in the translation" (HTTP 404); Kaleyra
    /// `WA401` (HTTP 401).
    Campaign,
}

impl SimFailureKind {
    /// The Meta code answered when [`SimFailure::code`] is unset.
    pub fn default_meta_code(self) -> i64 {
        match self {
            SimFailureKind::Permanent => 131026,
            SimFailureKind::Temporary => 131000,
            SimFailureKind::Campaign => 132001,
        }
    }

    /// The Kaleyra code answered when neither [`SimFailure::kaleyra_code`] nor
    /// [`SimFailure::code`] is set.
    pub fn default_kaleyra_code(self) -> &'static str {
        match self {
            SimFailureKind::Permanent => shared::domain::outcome::KALEYRA_INVALID_NUMBER_CODE,
            SimFailureKind::Temporary => "WA500",
            SimFailureKind::Campaign => "WA401",
        }
    }
}

/// A configured failure of one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimFailure {
    pub kind: SimFailureKind,
    /// A Meta error code answered instead of the kind's default. On the Kaleyra route it
    /// is passed through inside `meta_object.error`, as Kaleyra does with Meta's errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// A Kaleyra code answered on the Kaleyra route instead of the kind's default (wins
    /// over `code` there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kaleyra_code: Option<String>,
    /// Fail only this many more sends, then accept again; `None`: every send until
    /// cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl SimFailure {
    pub fn new(kind: SimFailureKind) -> Self {
        SimFailure {
            kind,
            code: None,
            kaleyra_code: None,
            times: None,
        }
    }

    pub fn permanent() -> Self {
        Self::new(SimFailureKind::Permanent)
    }

    pub fn temporary() -> Self {
        Self::new(SimFailureKind::Temporary)
    }

    pub fn campaign() -> Self {
        Self::new(SimFailureKind::Campaign)
    }

    /// Answers this Meta code instead of the kind's default.
    pub fn with_code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    /// Answers this Kaleyra code on the Kaleyra route.
    pub fn with_kaleyra_code(mut self, code: impl Into<String>) -> Self {
        self.kaleyra_code = Some(code.into());
        self
    }

    /// Fails only the next `n` sends to the number.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// The Meta code this failure answers.
    pub fn meta_code(&self) -> i64 {
        self.code.unwrap_or_else(|| self.kind.default_meta_code())
    }
}

/// Meta's error object (`error` of the answer).
pub(super) fn meta_error_value(code: i64, message: &str, details: Option<&str>) -> Value {
    let mut err = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "ASIMULATORTRACE",
    });
    if let Some(d) = details {
        err["error_data"] = json!({"messaging_product": "whatsapp", "details": d});
    }
    err
}

pub(super) fn meta_error(
    status: StatusCode,
    code: i64,
    message: &str,
    details: Option<&str>,
) -> Response {
    let err = meta_error_value(code, message, details);
    (status, Json(json!({ "error": err }))).into_response()
}

/// The HTTP status and title Meta gives a code (its error-code reference), for the codes
/// a configured failure is likely to use; others get 400 and a generic title.
pub(super) fn meta_code_info(code: i64) -> (StatusCode, &'static str) {
    match code {
        130429 => (StatusCode::BAD_REQUEST, "Rate limit hit"),
        131000 => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        131016 => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
        131026 => (StatusCode::BAD_REQUEST, "Message undeliverable"),
        131047 => (StatusCode::BAD_REQUEST, "Re-engagement message"),
        131048 => (StatusCode::BAD_REQUEST, "Spam rate limit hit"),
        131049 => (
            StatusCode::BAD_REQUEST,
            "This message was not delivered to maintain healthy ecosystem engagement",
        ),
        131050 => (
            StatusCode::BAD_REQUEST,
            "User has stopped marketing messages from this business",
        ),
        131056 => (
            StatusCode::BAD_REQUEST,
            "(Business Account, Consumer Account) pair rate limit hit",
        ),
        132001 => (
            StatusCode::NOT_FOUND,
            "Template name does not exist in the translation",
        ),
        132015 => (StatusCode::BAD_REQUEST, "Template is paused"),
        132016 => (StatusCode::BAD_REQUEST, "Template is disabled"),
        0 | 190 => (StatusCode::UNAUTHORIZED, "Access token has expired"),
        _ => (StatusCode::BAD_REQUEST, "Simulated failure"),
    }
}

/// The HTTP status, error object and message of a Meta code: `(#<code>) <title>`.
pub(super) fn meta_failure_parts(code: i64, details: Option<&str>) -> (StatusCode, Value, String) {
    let (status, title) = meta_code_info(code);
    let message = format!("(#{code}) {title}");
    let details = details.unwrap_or(title);
    (
        status,
        meta_error_value(code, &message, Some(details)),
        message,
    )
}

/// A Meta-coded failure on the Cloud API route.
pub(super) fn meta_failure(code: i64, details: Option<&str>) -> Response {
    let (status, err, _) = meta_failure_parts(code, details);
    (status, Json(json!({ "error": err }))).into_response()
}

/// Kaleyra's error envelope with its own code.
pub(super) fn kaleyra_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "data": [],
            "error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// A Meta error passed through by Kaleyra: Kaleyra's envelope with Meta's numeric code,
/// and Meta's error object in `meta_object.error`.
pub(super) fn kaleyra_meta_error(status: StatusCode, code: i64, details: Option<&str>) -> Response {
    let (_, err, message) = meta_failure_parts(code, details);
    (
        status,
        Json(json!({"message": message, "data": [],
            "error": {"code": code, "message": message},
            "meta_object": {"error": err}})),
    )
        .into_response()
}

/// The HTTP status and message of a Kaleyra send API code (PROVIDERS.md section 5).
pub(super) fn kaleyra_code_info(code: &str) -> (StatusCode, &'static str) {
    match code.to_ascii_uppercase().as_str() {
        "E413" => (
            StatusCode::BAD_REQUEST,
            shared::domain::outcome::KALEYRA_INVALID_NUMBER_REASON,
        ),
        "WA500" => (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error."),
        "WA401" => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized or template not approved.",
        ),
        "RBC001" => (StatusCode::UNAUTHORIZED, "Incorrect SID or API key."),
        "E110" => (StatusCode::PAYMENT_REQUIRED, "Insufficient balance."),
        "WAV2101" => (
            StatusCode::TOO_MANY_REQUESTS,
            "Daily limit for the account exceeded.",
        ),
        "WA400" => (StatusCode::BAD_REQUEST, "Incorrect payload."),
        _ => (StatusCode::BAD_REQUEST, "Simulated failure."),
    }
}

/// A configured failure on the Kaleyra route: its Kaleyra code, else its Meta code passed
/// through, else the kind's Kaleyra default.
pub(super) fn kaleyra_failure(f: &SimFailure) -> Response {
    match (&f.kaleyra_code, f.code) {
        (Some(code), _) => {
            let (status, message) = kaleyra_code_info(code);
            kaleyra_error(status, code, message)
        }
        (None, Some(code)) => kaleyra_meta_error(meta_code_info(code).0, code, None),
        (None, None) => {
            let code = f.kind.default_kaleyra_code();
            let (status, message) = kaleyra_code_info(code);
            kaleyra_error(status, code, message)
        }
    }
}
