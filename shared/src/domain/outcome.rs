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
    /// The request left and no usable answer came back (a timeout, a broken connection,
    /// a 5xx, a 2xx without a message id): the provider may have accepted the message.
    /// RETRY "outcome unknown", never sent again automatically, and the contact counts as
    /// written to (its interaction opens as if the message went out).
    Unknown,
    /// Nothing reached the provider and another attempt soon should work (the secrets
    /// store could not answer just now): the entry goes back in line, the campaign runs on.
    NotAttempted,
    /// Meta held the message back for the contact's marketing limit (131049), a limit
    /// counted across all businesses that adapts over time: sending again sooner than a
    /// day fails the same way, so the entry waits and is sent again automatically, a few
    /// times at most, never after the campaign's end ([`MarketingLimitRetry`]).
    ///
    /// [`MarketingLimitRetry`]: super::campaign::MarketingLimitRetry
    MarketingLimit,
    /// The contact stopped marketing messages from this business (131050): FAILED, and
    /// the contact goes on the tenant's marketing opt-out, which blocks MARKETING
    /// templates only, until the contact resumes them.
    MarketingOptOut,
    /// The contact is in Meta's marketing-message experiment (130472): Meta did not
    /// deliver it and does not bill it, and a resend fails the same way. Settled as its
    /// own outcome (`marketing_experiment`), not a generic failure.
    Experiment,
    /// The provider refuses the number because the contact opted out of SMS from it
    /// (Twilio 21610, a STOP): recorded as the opt-out check would (BLOCK_LIST, "Opted
    /// out"), not as a failure, and the contact goes on the tenant's opt-out list.
    OptedOut,
}

/// The reason of an entry waiting to be sent again after Meta's marketing limit (131049),
/// as the hopper and the statistics show it.
pub const MARKETING_LIMIT_HELD_REASON: &str = "held by Meta's marketing limit";
/// The reason of an entry whose marketing-limit retries ran out, or would have gone past
/// the campaign's end.
pub const MARKETING_LIMIT_REASON: &str = "Meta's marketing limit";
/// The reason of an entry whose contact stopped marketing messages (131050, or on the
/// tenant's marketing opt-out before the send).
pub const MARKETING_OPT_OUT_REASON: &str = "stopped marketing messages";
/// The reason of an entry whose contact is on the tenant's opt-out list, or whose
/// provider refused it as opted out ([`FailureClass::OptedOut`]).
pub const OPTED_OUT_REASON: &str = "opted out";
/// The reason of an entry settled by Meta's marketing experiment (130472).
pub const EXPERIMENT_REASON: &str = "Meta marketing experiment";
/// Meta's codes with a rule of their own.
pub const META_MARKETING_LIMIT_CODE: i64 = 131049;
pub const META_MARKETING_OPT_OUT_CODE: i64 = 131050;
pub const META_EXPERIMENT_CODE: i64 = 130472;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFailure {
    pub class: FailureClass,
    /// The provider's error code, when it gave one.
    pub code: Option<i64>,
    pub reason: String,
}

/// Meta's throughput error: the account sends faster than its number allows.
pub const META_THROUGHPUT_CODE: i64 = 130429;
/// Twilio's "Too Many Requests" (the API's concurrency limit) and "SMS rate limit
/// exceeded" (the number's queue): slow down.
pub const TWILIO_THROTTLE_CODES: [i64; 2] = [20429, 14107];
/// Twilio's refusal of a number that replied STOP (21610): the contact opted out.
pub const TWILIO_OPTED_OUT_CODE: i64 = 21610;

impl SendFailure {
    /// A throughput error: the account must slow down (R4.8). Meta's and Twilio's codes
    /// do not overlap (Twilio's are five digits in 1xxxx-3xxxx).
    pub fn is_throttling(&self) -> bool {
        self.code
            .is_some_and(|c| c == META_THROUGHPUT_CODE || TWILIO_THROTTLE_CODES.contains(&c))
    }
}

/// Twilio Programmable Messaging error codes, from the send API's answer and from status
/// callbacks (twilio.com/docs/api/errors, read 2026-12-07).
pub fn classify_twilio(code: i64) -> FailureClass {
    use FailureClass::*;
    match code {
        TWILIO_OPTED_OUT_CODE => OptedOut,
        // Slow down, queue full, unknown error, carrier or network trouble: try again.
        20429 | 14107 | 21611 | 30001 | 30008 | 30009 | 30010 | 30017 | 30022 => Temporary,
        // Bad credentials or account, a From that is not ours or cannot send SMS, an
        // unregistered 10DLC or unverified toll-free number, a suspended account: every
        // further send fails the same way.
        20003 | 20404 | 21606 | 21659 | 21212 | 21603 | 30002 | 30032 | 30034 | 30035 | 21704
        | 20008 => Campaign,
        // This contact cannot get this SMS: an invalid, landline or unreachable number, a
        // country not enabled, a carrier block or filter, a trial's unverified number.
        21211 | 21214 | 21217 | 21401 | 21407 | 21408 | 21608 | 21612 | 21614 | 21617 | 21635
        | 30003 | 30004 | 30005 | 30006 | 30007 | 30011 | 30012 | 30018 | 30019 | 30020 | 30023
        | 30024 | 30026 | 30027 | 30028 | 30029 | 30030 | 30031 => Permanent,
        // As for the others: an unknown code waits in RETRY for an operator.
        _ => Temporary,
    }
}

/// A provider's text with every phone number in it replaced by `<number>`: a `+` or a
/// digit starting a run of at least 8 digits, which may be grouped by single spaces,
/// dashes or dots (`+14155550100`, `9198 1234 5678`). Error codes (Meta's six digits,
/// Twilio's five) and counts stay. Provider messages reach the logs and become reason
/// counters (one per reason), so no phone number may stay in them.
pub fn redact_numbers(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let digit_at = |k: usize| chars.get(k).is_some_and(char::is_ascii_digit);
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let plus = chars[i] == '+' && digit_at(i + 1);
        if !(plus || digit_at(i)) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let (mut j, mut end, mut digits) = (i + usize::from(plus), i, 0);
        while j < chars.len() {
            if digit_at(j) {
                digits += 1;
                j += 1;
                end = j;
            } else if matches!(chars[j], ' ' | '-' | '.') && digit_at(j + 1) {
                j += 1;
            } else {
                break;
            }
        }
        if digits >= 8 {
            out.push_str("<number>");
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

/// The reason recorded for a Twilio error: its message and code.
pub fn twilio_reason(code: i64, message: &str) -> String {
    let message = redact_numbers(message.trim());
    let message = message.as_str();
    match code {
        TWILIO_OPTED_OUT_CODE => "the contact replied STOP to this number (21610)".to_owned(),
        30003 => "Unreachable destination handset (30003)".to_owned(),
        30005 => "Unknown destination handset (30005)".to_owned(),
        30006 => "Landline or unreachable carrier (30006)".to_owned(),
        30007 => "Message filtered by the carrier (30007)".to_owned(),
        _ if message.is_empty() => format!("Twilio error {code}"),
        _ => format!("{message} ({code})"),
    }
}

/// Meta Cloud API error codes (PROVIDERS.md section 3).
pub fn classify_meta(code: i64) -> FailureClass {
    use FailureClass::*;
    match code {
        META_MARKETING_LIMIT_CODE => MarketingLimit,
        META_MARKETING_OPT_OUT_CODE => MarketingOptOut,
        META_EXPERIMENT_CODE => Experiment,
        130429 | 131056 | 131000 | 131016 | 1 | 2 | 131057 | 4 | 80007 => Temporary,
        131026 | 131047 | 131021 | 131030 | 132005 | 132008 | 132012 => Permanent,
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
    let message = redact_numbers(message);
    let message = message.as_str();
    match code {
        131026 => META_UNDELIVERABLE_REASON.to_owned(),
        META_MARKETING_LIMIT_CODE => MARKETING_LIMIT_REASON.to_owned(),
        META_MARKETING_OPT_OUT_CODE => MARKETING_OPT_OUT_REASON.to_owned(),
        META_EXPERIMENT_CODE => EXPERIMENT_REASON.to_owned(),
        _ if message.is_empty() => format!("provider error {code}"),
        // Meta's messages usually name the code already: "(#131000) Something went wrong".
        _ if message.contains(&format!("(#{code})")) => message.to_owned(),
        _ => format!("{message} ({code})"),
    }
}

/// Kaleyra's invalid-number error code (send API). Kaleyra answers a number that is not
/// on WhatsApp with its own code `E413` and this reason; a Meta `131026` passed through
/// inside `meta_object` keeps Meta's wording ([`meta_reason`]).
pub const KALEYRA_INVALID_NUMBER_CODE: &str = "E413";
/// The reason recorded on the entry for [`KALEYRA_INVALID_NUMBER_CODE`] (R4.7), verbatim.
pub const KALEYRA_INVALID_NUMBER_REASON: &str =
    "'To' number invalid or WhatsApp account does not exist";

/// The reason Meta's 131026 is recorded with ([`meta_reason`]).
pub const META_UNDELIVERABLE_REASON: &str = "Message Undeliverable";

/// Whether an entry's recorded reason says WhatsApp refused its number as not on
/// WhatsApp: Meta's 131026 or Kaleyra's invalid-number error, the refusals a WhatsApp
/// campaign's SMS fallback follows (issue 16).
pub fn is_not_on_whatsapp_reason(reason: &str) -> bool {
    reason == META_UNDELIVERABLE_REASON || reason == KALEYRA_INVALID_NUMBER_REASON
}

/// Kaleyra send API codes (PROVIDERS.md section 5). Codes compare case-insensitively.
pub fn classify_kaleyra(code: &str) -> FailureClass {
    use FailureClass::*;
    match code.trim().to_ascii_uppercase().as_str() {
        // Wrong SID or key, no balance, account daily limit, unauthorized or template not
        // approved: every further send would fail the same way.
        "RBC001" | "E110" | "WAV2101" | "WA401" => Campaign,
        // A payload Kaleyra refuses for this contact, or a number not on WhatsApp.
        "WA400" | "E413" => Permanent,
        // Internal error: Kaleyra asks for a retry after 5, 10, 15 minutes.
        "WA500" => Temporary,
        // As for Meta: an unknown code waits in RETRY rather than failing the contact.
        _ => Temporary,
    }
}

/// The reason recorded on the entry for a Kaleyra error (R4.7 wording).
pub fn kaleyra_reason(code: &str, message: &str) -> String {
    let code = code.trim();
    let message = redact_numbers(message.trim());
    if code.eq_ignore_ascii_case(KALEYRA_INVALID_NUMBER_CODE) {
        KALEYRA_INVALID_NUMBER_REASON.to_owned()
    } else if message.is_empty() {
        format!("Kaleyra error {code}")
    } else {
        format!("{message} ({code})")
    }
}

/// The Meta error code quoted in a message the way Meta writes it, `(#131026) ...`: AWS
/// End User Messaging Social passes Meta's refusal on in its exception's message.
pub fn meta_code_in(message: &str) -> Option<i64> {
    let start = message.find("(#")? + 2;
    let rest = &message[start..];
    let end = rest.find(')')?;
    rest[..end].parse().ok()
}

/// AWS End User Messaging Social's `SendWhatsAppMessage` errors (PROVIDERS.md section 7),
/// by exception name, for a refusal that quotes no Meta code. `http_status` decides
/// what an unknown name means: a 4xx refused the request, a 5xx may follow an accepted
/// message.
pub fn classify_aws_social(error_type: &str, http_status: u16) -> FailureClass {
    use FailureClass::*;
    match error_type {
        // The service (or Meta behind it) asks to slow down: nothing was sent.
        "ThrottledRequestException" => Temporary,
        // The number is not there, or the role or Meta may not use it; and a request the
        // service calls invalid is the campaign's message (the same for every contact):
        // every further send would fail the same way, so the campaign pauses instead of
        // burning through its audience.
        "AccessDeniedException"
        | "AccessDeniedByMetaException"
        | "ResourceNotFoundException"
        | "ValidationException"
        | "InvalidParametersException" => Campaign,
        // Meta (the dependency) or the service failed while handling the request: it may
        // have gone out.
        "DependencyException" | "InternalServiceException" => Unknown,
        _ if http_status >= 500 => Unknown,
        _ => Temporary,
    }
}

impl SendFailure {
    /// A Kaleyra error. Kaleyra codes are not numbers: `code` stays `None` and the code
    /// is kept in the reason (except for the verbatim invalid-number reason).
    /// A Twilio error with its numeric code.
    pub fn twilio(code: i64, message: &str) -> Self {
        SendFailure {
            class: classify_twilio(code),
            code: Some(code),
            reason: twilio_reason(code, message),
        }
    }

    pub fn kaleyra(code: &str, message: &str) -> Self {
        SendFailure {
            class: classify_kaleyra(code),
            code: None,
            reason: kaleyra_reason(code, message),
        }
    }

    /// An AWS End User Messaging Social refusal: Meta's own code when the message quotes
    /// one (classified as Meta's), else by the exception's name. A throttling refusal
    /// carries Meta's throughput code so the account slows down as it would for Meta.
    pub fn aws_social(error_type: &str, message: &str, http_status: u16) -> Self {
        if let Some(code) = meta_code_in(message) {
            return SendFailure::meta(code, message);
        }
        let class = classify_aws_social(error_type, http_status);
        let name = if error_type.is_empty() {
            format!("HTTP {http_status}")
        } else {
            error_type.to_owned()
        };
        let reason = if message.trim().is_empty() {
            format!("AWS End User Messaging Social: {name}")
        } else {
            format!(
                "AWS End User Messaging Social: {name}: {}",
                redact_numbers(message.trim())
            )
        };
        let code = (error_type == "ThrottledRequestException").then_some(META_THROUGHPUT_CODE);
        SendFailure {
            class,
            code,
            reason,
        }
    }

    pub fn meta(code: i64, message: &str) -> Self {
        SendFailure {
            class: classify_meta(code),
            code: Some(code),
            reason: meta_reason(code, message),
        }
    }

    /// A failure after which the provider may have accepted the message
    /// ([`FailureClass::Unknown`]).
    pub fn outcome_unknown(reason: impl Into<String>) -> Self {
        SendFailure {
            class: FailureClass::Unknown,
            code: None,
            reason: reason.into(),
        }
    }

    /// A failure before the request reached the provider (no connection) or an answer
    /// that says it refused without saying why: nothing was sent.
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

    /// Review of issue 16: Twilio's 21211 message names the number ("The 'To' number
    /// +14155550100 is not a valid phone number."); kept word for word it reached the
    /// logs and made a reason counter per contact.
    #[test]
    fn provider_reasons_never_carry_a_phone_number() {
        let twilio = twilio_reason(
            21211,
            "The 'To' number +14155550100 is not a valid phone number.",
        );
        assert_eq!(
            twilio,
            "The 'To' number <number> is not a valid phone number. (21211)"
        );
        let meta = meta_reason(131009, "Recipient 919812345678 is not valid");
        assert!(!meta.contains("919812345678"), "{meta}");
        let kaleyra = kaleyra_reason("E999", "number 9198 1234 5678 blocked");
        assert!(!kaleyra.contains("1234"), "{kaleyra}");
        let aws = SendFailure::aws_social("ValidationException", "bad +15550001111", 400);
        assert!(!aws.reason.contains("15550001111"), "{}", aws.reason);
        // Codes, counts and short numbers stay.
        assert_eq!(
            redact_numbers("(#131026) Message undeliverable, 3 parts"),
            "(#131026) Message undeliverable, 3 parts"
        );
    }

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

    #[test]
    fn meta_2026_codes_have_outcomes_of_their_own() {
        for (code, class, reason) in [
            (131049, FailureClass::MarketingLimit, MARKETING_LIMIT_REASON),
            (
                131050,
                FailureClass::MarketingOptOut,
                MARKETING_OPT_OUT_REASON,
            ),
            (130472, FailureClass::Experiment, EXPERIMENT_REASON),
        ] {
            let f = SendFailure::meta(code, "(#0) whatever Meta wrote");
            assert_eq!((f.class, f.reason.as_str()), (class, reason), "{code}");
        }
    }

    #[test]
    fn r4_7_kaleyra_codes_are_classified_here_too() {
        assert_eq!(classify_kaleyra("rbc001"), FailureClass::Campaign);
        assert_eq!(classify_kaleyra("WA400"), FailureClass::Permanent);
        assert_eq!(classify_kaleyra("WA500"), FailureClass::Temporary);
        let f = SendFailure::kaleyra("E413", "whatever");
        assert_eq!(f.class, FailureClass::Permanent);
        assert_eq!(f.reason, KALEYRA_INVALID_NUMBER_REASON);
        assert_eq!(
            SendFailure::kaleyra("WA500", "").reason,
            "Kaleyra error WA500"
        );
    }

    #[test]
    fn aws_social_errors_are_classified_by_metas_code_then_by_name() {
        assert_eq!(
            meta_code_in("(#131026) Message undeliverable"),
            Some(131026)
        );
        assert_eq!(
            meta_code_in("Meta said (#132001) Template name"),
            Some(132001)
        );
        assert_eq!(meta_code_in("no code (#x)"), None);
        let f = SendFailure::aws_social(
            "ValidationException",
            "(#131026) Message undeliverable",
            400,
        );
        assert_eq!((f.class, f.code), (FailureClass::Permanent, Some(131026)));
        let f = SendFailure::aws_social("DependencyException", "(#131049) limit", 502);
        assert_eq!(f.class, FailureClass::MarketingLimit);
        let f = SendFailure::aws_social("ThrottledRequestException", "Rate exceeded", 429);
        assert_eq!(f.class, FailureClass::Temporary);
        assert!(f.is_throttling(), "the account slows down");
        for name in [
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ValidationException",
        ] {
            assert_eq!(
                SendFailure::aws_social(name, "", 400).class,
                FailureClass::Campaign,
                "{name}"
            );
        }
        for name in ["DependencyException", "InternalServiceException", ""] {
            assert_eq!(
                SendFailure::aws_social(name, "", 500).class,
                FailureClass::Unknown,
                "{name}"
            );
        }
        let f = SendFailure::aws_social("SomethingNew", "", 400);
        assert_eq!(f.class, FailureClass::Temporary);
        assert_eq!(f.reason, "AWS End User Messaging Social: SomethingNew");
    }
}
