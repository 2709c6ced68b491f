//! Tenants: the organisations the engine serves, each with its own flags (R1.8).

use super::{DomainError, Time};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// The time zone shown when a tenant has not chosen one.
pub const DEFAULT_TIMEZONE: &str = "UTC";

fn yes() -> bool {
    true
}

fn utc() -> String {
    DEFAULT_TIMEZONE.to_owned()
}

/// The opt-out keywords a tenant starts with (R5.7). STOP always counts, whatever the
/// tenant configures. The defaults are the words people send to stop business messages
/// and that mean little else in a chat: STOP, STOPALL, UNSUBSCRIBE, and "Stop promotions"
/// (the label of Meta's opt-out button on marketing templates). SMS's CANCEL, END and
/// QUIT are left out on purpose: on WhatsApp they are ordinary answers ("cancel my
/// order"); a tenant that wants them adds them.
pub const DEFAULT_OPT_OUT_KEYWORDS: [&str; 4] =
    ["STOP", "STOPALL", "UNSUBSCRIBE", "STOP PROMOTIONS"];
/// The words that opt a contact out of SMS (the CTIA's and the providers' list), on top
/// of the tenant's own: on SMS, unlike WhatsApp, CANCEL, END and QUIT are opt-outs.
pub const SMS_OPT_OUT_KEYWORDS: [&str; 6] =
    ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// The words that ask a business for help by SMS (carriers require an answer).
pub const HELP_KEYWORDS: [&str; 2] = ["HELP", "INFO"];
/// Longest SMS HELP answer: two GSM-7 parts or so.
pub const MAX_HELP_CHARS: usize = 320;
/// The keyword that always opts a contact out.
pub const ALWAYS_OPT_OUT: &str = "STOP";
/// Most keywords a tenant configures.
pub const MAX_OPT_OUT_KEYWORDS: usize = 20;
/// Longest keyword.
pub const MAX_KEYWORD_CHARS: usize = 40;

fn default_keywords() -> Vec<String> {
    DEFAULT_OPT_OUT_KEYWORDS.map(String::from).to_vec()
}

/// A tenant's settings. A tenant without a stored item has the defaults: campaigns
/// enabled, times shown in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "acme", "campaigns_enabled": true, "timezone": "Asia/Kolkata", "opt_out_keywords": ["STOP", "STOPALL", "UNSUBSCRIBE", "STOP PROMOTIONS"], "updated_at": "2026-11-21T09:00:00Z", "version": 3}))]
pub struct Tenant {
    pub id: String,
    /// When off, every `/campaigns` endpoint answers 403 (R1.8).
    #[serde(default = "yes")]
    pub campaigns_enabled: bool,
    /// IANA time zone in which the tenant's times are shown (R1.2).
    #[serde(default = "utc")]
    pub timezone: String,
    /// A contact's message equal to one of these (case, surrounding spaces and
    /// punctuation aside) puts it on the tenant's opt-out list (R5.7). STOP always does.
    #[serde(default = "default_keywords")]
    pub opt_out_keywords: Vec<String>,
    /// The answer to an SMS that says HELP (or INFO), sent from the number it was sent
    /// to; none: HELP is left to the provider's own keyword handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_help_text: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version; 0 while nothing is stored.
    #[serde(default)]
    pub version: u64,
}

/// `PUT /tenant`: the fields given replace the stored ones; fields left out keep theirs.
/// `campaigns_enabled` is not among them: an administrator sets it ([`TenantSwitches`]).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"timezone": "Europe/Madrid", "opt_out_keywords": ["STOP", "BAJA", "UNSUBSCRIBE"]}))]
pub struct TenantSettings {
    /// IANA time zone, e.g. `Asia/Kolkata`; `null` resets it to UTC.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    /// Opt-out keywords (R5.7), at most 20 of at most 40 characters; STOP is always one
    /// (added when missing). `null` resets them to the defaults.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub opt_out_keywords: Option<Option<Vec<String>>>,
    /// The answer to an SMS HELP, at most 320 characters; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 320)]
    pub sms_help_text: Option<Option<String>>,
}

/// `PUT /admin/tenants/{tenant_id}`: what only the platform's administrator sets on a
/// tenant (R1.8: "an administrator enables campaigns for the tenant"). The tenant's own
/// credentials never reach it: in AWS the route needs the administrator's JWT scope.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"campaigns_enabled": false}))]
pub struct TenantSwitches {
    /// When off, every `/campaigns` endpoint of the tenant answers 403.
    pub campaigns_enabled: bool,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
pub(crate) fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parses an IANA time zone name (`Europe/Madrid`), naming `field` when it is unknown.
pub fn parse_timezone(field: &str, tz: &str) -> Result<chrono_tz::Tz, DomainError> {
    tz.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        DomainError::invalid(
            field,
            format!("'{tz}' is not an IANA time zone (e.g. Europe/Madrid, Asia/Kolkata, UTC)"),
        )
    })
}

impl Tenant {
    /// The settings of a tenant that has stored none.
    pub fn defaults(id: &str) -> Self {
        Tenant {
            id: id.to_owned(),
            campaigns_enabled: true,
            timezone: utc(),
            opt_out_keywords: default_keywords(),
            sms_help_text: None,
            updated_at: None,
            version: 0,
        }
    }

    /// The keyword `text` (or a tapped button's payload) is, if it is one of the tenant's
    /// opt-out keywords or STOP (R5.7), as the tenant spells it.
    pub fn opt_out_keyword(&self, text: Option<&str>, button: Option<&str>) -> Option<String> {
        let said: Vec<String> = [text, button]
            .into_iter()
            .flatten()
            .map(super::answer::normalise)
            .filter(|s| !s.is_empty())
            .collect();
        std::iter::once(ALWAYS_OPT_OUT)
            .chain(self.opt_out_keywords.iter().map(String::as_str))
            .find(|k| said.contains(&super::answer::normalise(k)))
            .map(str::to_owned)
    }

    /// [`Tenant::opt_out_keyword`] of an SMS: SMS's own opt-out words
    /// ([`SMS_OPT_OUT_KEYWORDS`]) count too, as carriers and the providers treat them.
    pub fn sms_opt_out_keyword(&self, text: Option<&str>) -> Option<String> {
        let said = super::answer::normalise(text?);
        SMS_OPT_OUT_KEYWORDS
            .into_iter()
            .find(|k| said == super::answer::normalise(k))
            .map(str::to_owned)
            .or_else(|| self.opt_out_keyword(text, None))
    }

    /// Applies `PUT /tenant`; nothing changes when a field is invalid.
    pub fn apply(&mut self, s: TenantSettings, now: Time) -> Result<(), DomainError> {
        let timezone = match s.timezone {
            None => self.timezone.clone(),
            Some(None) => utc(),
            Some(Some(tz)) => parse_timezone("timezone", &tz)?.name().to_owned(),
        };
        let keywords = match s.opt_out_keywords {
            None => self.opt_out_keywords.clone(),
            Some(None) => default_keywords(),
            Some(Some(words)) => opt_out_keywords(words)?,
        };
        let help = match s.sms_help_text {
            None => self.sms_help_text.clone(),
            Some(None) => None,
            Some(Some(t)) if t.trim().is_empty() => None,
            Some(Some(t)) if t.trim().chars().count() > MAX_HELP_CHARS => {
                return Err(DomainError::invalid(
                    "sms_help_text",
                    format!("must be at most {MAX_HELP_CHARS} characters"),
                ))
            }
            Some(Some(t)) => Some(t.trim().to_owned()),
        };
        self.timezone = timezone;
        self.opt_out_keywords = keywords;
        self.sms_help_text = help;
        self.updated_at = Some(now);
        Ok(())
    }

    /// The answer to an SMS saying `text`, when it asks for HELP ([`asks_for_help`]) and
    /// the tenant set one.
    pub fn sms_help_reply(&self, text: Option<&str>) -> Option<&str> {
        self.sms_help_text
            .as_deref()
            .filter(|_| asks_for_help(text))
    }

    /// Applies an administrator's `PUT /admin/tenants/{tenant_id}`.
    pub fn switch(&mut self, s: &TenantSwitches, now: Time) {
        self.campaigns_enabled = s.campaigns_enabled;
        self.updated_at = Some(now);
    }
}

/// Whether an SMS says HELP or INFO (case and punctuation aside): a keyword carriers
/// require an answer to, never a reply to a campaign.
pub fn asks_for_help(text: Option<&str>) -> bool {
    text.is_some_and(|t| {
        let said = super::answer::normalise(t);
        HELP_KEYWORDS
            .iter()
            .any(|k| said == super::answer::normalise(k))
    })
}

/// Validates a tenant's opt-out keywords: trimmed, upper case, no duplicates, STOP first
/// when missing, at most [`MAX_OPT_OUT_KEYWORDS`] of at most [`MAX_KEYWORD_CHARS`].
fn opt_out_keywords(words: Vec<String>) -> Result<Vec<String>, DomainError> {
    let field = "opt_out_keywords";
    let mut out: Vec<String> = vec![ALWAYS_OPT_OUT.to_owned()];
    for (i, w) in words.iter().enumerate() {
        let w = w.split_whitespace().collect::<Vec<_>>().join(" ");
        if super::answer::normalise(&w).is_empty() {
            return Err(DomainError::invalid(
                format!("{field}[{i}]"),
                "must contain a letter or digit",
            ));
        }
        if w.chars().count() > MAX_KEYWORD_CHARS {
            return Err(DomainError::invalid(
                format!("{field}[{i}]"),
                format!("must be at most {MAX_KEYWORD_CHARS} characters"),
            ));
        }
        let w = w.to_uppercase();
        if !out.contains(&w) {
            out.push(w);
        }
    }
    if out.len() > MAX_OPT_OUT_KEYWORDS {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_OPT_OUT_KEYWORDS} keywords (STOP included)"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r1_8_tenant_defaults_enable_campaigns_in_utc() {
        let t: Tenant = serde_json::from_value(serde_json::json!({"id": "acme"})).unwrap();
        assert_eq!(t, Tenant::defaults("acme"));
        assert!(t.campaigns_enabled);
        assert_eq!(t.timezone, "UTC");
    }

    #[test]
    fn r1_8_tenant_settings_validate_the_timezone() {
        let now = chrono::Utc::now();
        let mut t = Tenant::defaults("acme");
        let err = t
            .apply(
                TenantSettings {
                    timezone: Some(Some("Mars/Olympus".into())),
                    ..Default::default()
                },
                now,
            )
            .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "timezone"));
        assert_eq!(t.timezone, "UTC", "nothing changes on a bad request");
        t.switch(
            &TenantSwitches {
                campaigns_enabled: false,
            },
            now,
        );
        t.apply(
            TenantSettings {
                timezone: Some(Some("Asia/Kolkata".into())),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(
            (t.campaigns_enabled, t.timezone.as_str()),
            (false, "Asia/Kolkata"),
            "settings keep the administrator's switch"
        );
        let s: TenantSettings = serde_json::from_str(r#"{"timezone": null}"#).unwrap();
        t.apply(s, now).unwrap();
        assert_eq!((t.campaigns_enabled, t.timezone.as_str()), (false, "UTC"));
    }

    #[test]
    fn r5_7_opt_out_keywords_default_validate_and_match() {
        let now = chrono::Utc::now();
        let mut t = Tenant::defaults("acme");
        assert_eq!(t.opt_out_keywords, DEFAULT_OPT_OUT_KEYWORDS);
        assert_eq!(
            t.opt_out_keyword(Some(" stop! "), None).as_deref(),
            Some("STOP")
        );
        assert_eq!(
            t.opt_out_keyword(Some("Stop promotions"), Some("payload"))
                .as_deref(),
            Some("STOP PROMOTIONS")
        );
        assert_eq!(t.opt_out_keyword(Some("please stop calling"), None), None);
        assert_eq!(t.opt_out_keyword(Some("cancel"), None), None);
        // On SMS, CANCEL, END and QUIT opt out too; the tenant's words still count.
        assert_eq!(
            t.sms_opt_out_keyword(Some(" Cancel ")).as_deref(),
            Some("CANCEL")
        );
        assert_eq!(t.sms_opt_out_keyword(Some("quit")).as_deref(), Some("QUIT"));
        assert_eq!(t.sms_opt_out_keyword(Some("cancel my order")), None);
        // HELP is answered only with a text set; the text is bounded.
        assert_eq!(t.sms_help_reply(Some("help")), None);
        let mut h = t.clone();
        let set = |v: serde_json::Value| serde_json::from_value::<TenantSettings>(v).unwrap();
        h.apply(
            set(
                serde_json::json!({"sms_help_text": "Acme: call 555-0100. Reply STOP to opt out."}),
            ),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            h.sms_help_reply(Some(" Help! ")),
            Some("Acme: call 555-0100. Reply STOP to opt out.")
        );
        assert!(h.sms_help_reply(Some("info")).is_some());
        assert_eq!(h.sms_help_reply(Some("help me with my order")), None);
        let long = "x".repeat(321);
        let e = h
            .apply(set(serde_json::json!({"sms_help_text": long})), Utc::now())
            .unwrap_err();
        assert_eq!(e.field(), Some("sms_help_text"));
        h.apply(set(serde_json::json!({"sms_help_text": null})), Utc::now())
            .unwrap();
        assert_eq!(h.sms_help_reply(Some("help")), None);
        let s: TenantSettings =
            serde_json::from_str(r#"{"opt_out_keywords": [" baja ", "Cancel", "BAJA"]}"#).unwrap();
        t.apply(s, now).unwrap();
        assert_eq!(t.opt_out_keywords, ["STOP", "BAJA", "CANCEL"]);
        assert_eq!(
            t.opt_out_keyword(Some("Baja."), None).as_deref(),
            Some("BAJA")
        );
        assert_eq!(
            t.opt_out_keyword(Some("STOP"), None).as_deref(),
            Some("STOP")
        );
        let bad: TenantSettings =
            serde_json::from_str(r#"{"opt_out_keywords": ["ok", "!!"]}"#).unwrap();
        let err = t.clone().apply(bad, now).unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { field, .. } if field == "opt_out_keywords[1]")
        );
        let many: Vec<String> = (0..25).map(|i| format!("W{i}")).collect();
        let err = t
            .clone()
            .apply(
                TenantSettings {
                    opt_out_keywords: Some(Some(many)),
                    ..Default::default()
                },
                now,
            )
            .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "opt_out_keywords"));
        let reset: TenantSettings = serde_json::from_str(r#"{"opt_out_keywords": null}"#).unwrap();
        t.apply(reset, now).unwrap();
        assert_eq!(t.opt_out_keywords, DEFAULT_OPT_OUT_KEYWORDS);
        let stored: Tenant = serde_json::from_value(serde_json::json!({"id": "old"})).unwrap();
        assert_eq!(
            stored.opt_out_keywords, DEFAULT_OPT_OUT_KEYWORDS,
            "items stored before"
        );
    }
}
