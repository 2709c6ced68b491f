//! WhatsApp templates (R3): structure and its rules, provider statuses and quality,
//! placeholders and rendering, and what a provider's copy of a template says.

use super::{DomainError, Time};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use utoipa::ToSchema;

/// Where a template stands with the provider (R3.2). Only APPROVED templates are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
}

impl TemplateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Rejected => "REJECTED",
            TemplateStatus::Paused => "PAUSED",
            TemplateStatus::Disabled => "DISABLED",
        }
    }

    /// A template in this status stops every campaign that sends it (R3.2).
    pub fn stops_sending(self) -> bool {
        matches!(self, TemplateStatus::Paused | TemplateStatus::Disabled)
    }
}

impl fmt::Display for TemplateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider's quality rating of a template (Meta: GREEN, YELLOW, RED, UNKNOWN).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Quality {
    Green,
    Yellow,
    Red,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

pub const MAX_BODY_CHARS: usize = 1024;
/// Meta allows up to ten quick-reply buttons on a template.
pub const MAX_QUICK_REPLIES: usize = 10;
/// Longest button label Meta accepts.
pub const MAX_BUTTON_TEXT: usize = 25;
/// Templates one provider account may hold (R3.4).
pub const MAX_TEMPLATES_PER_ACCOUNT: usize = 250;
/// Longest template name Meta accepts.
pub const MAX_NAME_CHARS: usize = 512;

/// Media a header shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
        }
    }
}

/// A media header (R3.1). The link is sent with every message (Meta's header parameter);
/// it is ours to choose, so it may change in any status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"type": "image", "url": "https://cdn.example.com/banner.jpg"}))]
pub struct MediaHeader {
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// Public http(s) link to the media. Required when registering by hand; a template
    /// synchronised from Meta without an example link has none until one is set, and
    /// cannot be sent before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// File name shown for a document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A call-to-action button (R3.1): at most one of each kind on a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallToAction {
    /// Calls the number when tapped.
    PhoneNumber { text: String, phone_number: String },
    /// Opens the link when tapped.
    Url { text: String, url: String },
}

impl CallToAction {
    fn text(&self) -> &str {
        match self {
            CallToAction::PhoneNumber { text, .. } | CallToAction::Url { text, .. } => text,
        }
    }
}

/// Names one template of an account (the recontact template, R3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "we_miss_you", "language": "en"}))]
#[serde(deny_unknown_fields)]
pub struct TemplateKey {
    pub name: String,
    pub language: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "tenant": "acme", "account_id": "acc_0190a1", "name": "spring_offer", "language": "en",
    "category": "MARKETING", "body": "Hi {{1}}, your code {{2}} gives 20% off",
    "header": {"type": "image", "url": "https://cdn.example.com/spring.jpg"},
    "quick_replies": ["Yes", "No"], "call_to_action": [], "status": "APPROVED",
    "quality": "GREEN", "provider_id": "1689556908129832",
    "created_at": "2026-03-01T09:00:00Z", "updated_at": "2026-03-02T10:00:00Z", "version": 2
}))]
pub struct Template {
    pub tenant: String,
    pub account_id: String,
    pub name: String,
    pub language: String,
    pub category: Category,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<MediaHeader>,
    /// Quick-reply button texts, in order. Never together with `call_to_action`.
    #[serde(default)]
    pub quick_replies: Vec<String>,
    /// Call-to-action buttons. Never together with `quick_replies`.
    #[serde(default)]
    pub call_to_action: Vec<CallToAction>,
    pub status: TemplateStatus,
    /// The provider's reason for the last status (rejection or pause reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub quality: Quality,
    /// The provider's id of the template (Meta: message_template_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Time>,
    /// Optimistic-concurrency version; every stored change bumps it.
    #[serde(default)]
    pub version: u64,
}

/// A template registered by hand (`POST /templates`). Registering a name and language the
/// account already has replaces that template's content.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "account_id": "acc_0190a1", "name": "spring_offer", "language": "en",
    "category": "MARKETING", "body": "Hi {{1}}, your code {{2}} gives 20% off",
    "header": {"type": "image", "url": "https://cdn.example.com/spring.jpg"},
    "quick_replies": ["Yes", "No"]
}))]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    #[schema(value_type = String, required = true, min_length = 1)]
    pub account_id: Option<String>,
    #[schema(value_type = String, required = true, min_length = 1)]
    pub name: Option<String>,
    pub language: Option<String>,
    pub category: Option<Category>,
    pub body: Option<String>,
    #[serde(default)]
    pub header: Option<MediaHeader>,
    #[serde(default)]
    pub quick_replies: Vec<String>,
    #[serde(default)]
    pub call_to_action: Vec<CallToAction>,
    /// Registering by hand records the status the provider gave; default APPROVED.
    pub status: Option<TemplateStatus>,
    #[serde(default)]
    pub quality: Option<Quality>,
    /// The provider's template id, when known (lets status webhooks match precisely).
    #[serde(default)]
    pub provider_id: Option<String>,
}

/// `null` and absent differ: `"header": null` removes the header, no `header` keeps it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A change to a stored template (`PUT /templates/{account_id}/{name}/{language}`); absent
/// fields stay as they are.
///
/// Content (category, body, buttons, the header's type) can only change while the provider
/// is not reviewing the template (not PENDING) and it is not DISABLED, as with Meta; Meta
/// reviews an edited template again, so it becomes PENDING unless `status` says otherwise.
/// The header's link and file name, the status and the quality can change at any time.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({"body": "Hi {{1}}, spring ends Sunday: code {{2}}", "quick_replies": ["Yes", "Stop"]}))]
#[serde(deny_unknown_fields)]
pub struct TemplateEdit {
    pub category: Option<Category>,
    pub body: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MediaHeader>)]
    pub header: Option<Option<MediaHeader>>,
    pub quick_replies: Option<Vec<String>>,
    pub call_to_action: Option<Vec<CallToAction>>,
    pub status: Option<TemplateStatus>,
    pub quality: Option<Quality>,
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edited {
    pub content_changed: bool,
    /// The status before, when the edit changed it.
    pub status_from: Option<TemplateStatus>,
}

/// Where a placeholder's value comes from (R3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum VariableSource {
    /// The same text for every contact.
    Text { value: String },
    /// The contact's name.
    ContactName,
    /// A custom field of the contact.
    Field { name: String },
    /// The value of one of the contact's valued tags (key -> value).
    ValuedTag { name: String },
}

/// What a contact supplies to a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactData {
    pub name: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub valued_tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// Body parameter values, `{{1}}` first.
    pub params: Vec<String>,
    /// The body as the customer reads it, for the conversation view.
    pub text: String,
    /// The suffix of the template's URL button, when its link ends with a variable.
    pub url_suffix: Option<UrlSuffix>,
}

/// The per-recipient end of a URL button's link (Meta's `sub_type: url` button with a
/// text parameter), e.g. a tracking code: the button's index among the template's
/// buttons and the text put in place of `{{1}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSuffix {
    pub index: usize,
    pub text: String,
}

/// The only variable a URL button's link may hold, at its end (Meta's rule).
const URL_VARIABLE: &str = "{{1}}";

/// What a source gives for one contact, when it gives anything.
fn value_of(source: Option<&VariableSource>, contact: &ContactData) -> Option<String> {
    let v = match source? {
        VariableSource::Text { value } => Some(value.clone()),
        VariableSource::ContactName => contact.name.clone(),
        VariableSource::Field { name } => contact.fields.get(name).cloned(),
        VariableSource::ValuedTag { name } => contact.valued_tags.get(name).cloned(),
    };
    v.filter(|v| !v.trim().is_empty())
}

// ---- a provider's copy of a template (R3.4) ----

/// A template header as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderHeader {
    /// A text header; `{{1}}` in it needs a parameter at send time.
    Text(String),
    /// A media header, with the example link the template was submitted with, if any.
    Media {
        kind: MediaKind,
        example_url: Option<String>,
    },
    /// A header format this engine does not model (e.g. LOCATION).
    Other(String),
}

/// A template button as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderButton {
    QuickReply(String),
    CallToAction(CallToAction),
    /// A button type this engine does not send (COPY_CODE, OTP, FLOW, ...).
    Other(String),
}

/// One template from the provider's list, mapped to our vocabulary by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTemplate {
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    /// `None` when the provider's status has no equivalent here (see `provider_status`).
    pub status: Option<TemplateStatus>,
    /// The status as the provider spells it.
    pub provider_status: String,
    pub category: Option<Category>,
    pub quality: Quality,
    pub status_reason: Option<String>,
    pub body: Option<String>,
    pub header: Option<ProviderHeader>,
    pub buttons: Vec<ProviderButton>,
}

/// One page of the provider's template list; `after` continues it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderTemplatePage {
    pub templates: Vec<ProviderTemplate>,
    pub after: Option<String>,
}

/// The provider refused or failed to list templates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TemplateListError {
    /// The provider's error code, when it gave one.
    pub code: Option<i64>,
    pub reason: String,
}

/// The template status a send error reports (Meta: 132015 template paused, 132016
/// template disabled), so a lost status webhook does not keep other campaigns sending.
pub fn status_from_send_error(code: i64) -> Option<TemplateStatus> {
    match code {
        132015 => Some(TemplateStatus::Paused),
        132016 => Some(TemplateStatus::Disabled),
        _ => None,
    }
}

// ---- rules ----

/// A piece of a body: text kept as written, or a placeholder's number.
enum Piece<'a> {
    Text(&'a str),
    Placeholder(usize),
}

/// Splits a body into text and placeholders. A placeholder is written as Meta writes it:
/// `{{`, a number from 1 with ASCII digits only, `}}` (`{{1}}`, `{{12}}`). Every `{{`
/// must open one: other spellings (`{{ 1 }}`, `{{01}}`, `{{+1}}`, `{{name}}`), which Meta
/// refuses, are an error naming `body`, so what is counted is exactly what is rendered.
fn pieces(body: &str) -> Result<Vec<Piece<'_>>, DomainError> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| DomainError::invalid("body", "has '{{' without a closing '}}'"))?;
        let inner = &after[..end];
        let digits = !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit());
        if !digits {
            return Err(DomainError::invalid(
                "body",
                format!(
                    "placeholder '{{{{{inner}}}}}' must be a number written like {{{{1}}}}, \
                     with digits only (no spaces or signs)"
                ),
            ));
        }
        if inner.bytes().all(|b| b == b'0') {
            return Err(DomainError::invalid("body", "placeholders start at {{1}}"));
        }
        if inner.starts_with('0') {
            return Err(DomainError::invalid(
                "body",
                format!(
                    "placeholder '{{{{{inner}}}}}' must be written without leading zeros, \
                     like {{{{{}}}}}",
                    inner.trim_start_matches('0')
                ),
            ));
        }
        let n: usize = inner.parse().map_err(|_| {
            DomainError::invalid(
                "body",
                format!("placeholder '{{{{{inner}}}}}' is too large a number"),
            )
        })?;
        out.push(Piece::Placeholder(n));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// The reason of an entry whose template could not be filled for its contact (R3.3).
pub const TEMPLATE_VARIABLES_REASON: &str = "template variables";

/// A body filled for one contact: the value of each placeholder, `{{1}}` first, and the
/// text as the contact reads it; an error naming the first placeholder without a value.
/// One pass over the body: a value that itself reads like a placeholder is kept as it
/// is, not filled in turn. Templates and SMS messages are filled alike.
pub fn fill(
    body: &str,
    variables: &[VariableSource],
    contact: &ContactData,
) -> Result<(Vec<String>, String), String> {
    let pieces = pieces(body).map_err(|e| e.to_string())?;
    let n = placeholders_of(&pieces).map_err(|e| e.to_string())?;
    let mut params = Vec::with_capacity(n);
    for i in 0..n {
        match value_of(variables.get(i), contact) {
            Some(v) => params.push(v),
            None => return Err(format!("missing value for variable {{{{{}}}}}", i + 1)),
        }
    }
    let mut text = String::with_capacity(body.len());
    for piece in &pieces {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Placeholder(i) => text.push_str(&params[i - 1]),
        }
    }
    Ok((params, text))
}

/// A body as far as it is the same for every contact: free-text variables filled in,
/// the others left as written (`{{2}}`). An error names `field` when the placeholders
/// are malformed or one has no mapping.
pub fn fill_known(
    body: &str,
    variables: &[VariableSource],
    field: &str,
) -> Result<String, DomainError> {
    let renamed = |e: DomainError| match e {
        DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
        other => other,
    };
    let pieces = pieces(body).map_err(renamed)?;
    let n = placeholders_of(&pieces).map_err(renamed)?;
    if variables.len() < n {
        return Err(DomainError::invalid(
            "variables",
            format!(
                "placeholder {{{{{}}}}} of the {field} has no mapping",
                variables.len() + 1
            ),
        ));
    }
    let mut text = String::with_capacity(body.len());
    for piece in &pieces {
        match (piece, piece_source(piece, variables)) {
            (_, Some(VariableSource::Text { value })) => text.push_str(value),
            (Piece::Text(t), _) => text.push_str(t),
            (Piece::Placeholder(i), _) => text.push_str(&format!("{{{{{i}}}}}")),
        }
    }
    Ok(text)
}

fn piece_source<'v>(
    piece: &Piece<'_>,
    variables: &'v [VariableSource],
) -> Option<&'v VariableSource> {
    match piece {
        Piece::Placeholder(i) => variables.get(i - 1),
        Piece::Text(_) => None,
    }
}

/// Counts the numbered placeholders of a body and checks they run `{{1}}..{{n}}` (each
/// written exactly so: see [`pieces`]).
pub fn placeholder_count(body: &str) -> Result<usize, DomainError> {
    placeholders_of(&pieces(body)?)
}

/// The number of placeholders among `pieces`, which must run `{{1}}..{{n}}`.
fn placeholders_of(pieces: &[Piece<'_>]) -> Result<usize, DomainError> {
    let mut seen: Vec<usize> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Placeholder(n) => Some(*n),
            Piece::Text(_) => None,
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    for (i, n) in seen.iter().enumerate() {
        if *n != i + 1 {
            return Err(DomainError::invalid(
                "body",
                format!("placeholder {{{{{}}}}} is missing", i + 1),
            ));
        }
    }
    Ok(seen.len())
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(char::is_whitespace)
    }) && s.len() <= 2000
}

fn is_phone(s: &str) -> bool {
    let digits: Vec<char> = s
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    (5..=20).contains(&digits.len()) && digits.iter().all(char::is_ascii_digit)
}

fn check_name(name: &str) -> Result<(), DomainError> {
    if name.chars().count() > MAX_NAME_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(DomainError::invalid(
            "name",
            "use lowercase letters, digits and '_' as Meta does (at most 512)",
        ));
    }
    Ok(())
}

fn check_language(language: &str) -> Result<(), DomainError> {
    let ok = (2..=15).contains(&language.len())
        && language
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "language",
            "must be a language code such as en or en_US",
        ))
    }
}

fn check_body(body: &str) -> Result<(), DomainError> {
    if body.trim().is_empty() {
        return Err(DomainError::invalid("body", "is required"));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(DomainError::invalid(
            "body",
            format!("must be at most {MAX_BODY_CHARS} characters"),
        ));
    }
    placeholder_count(body).map(|_| ())
}

/// `require_url`: registering by hand must give the link; a provider's copy may lack it.
fn check_header(h: &MediaHeader, require_url: bool) -> Result<(), DomainError> {
    match h.url.as_deref() {
        Some(u) if !is_http_url(u) => {
            return Err(DomainError::invalid(
                "header.url",
                "must be an http(s) link to the media",
            ))
        }
        None if require_url => {
            return Err(DomainError::invalid(
                "header.url",
                format!("is required for a {} header", h.kind.as_str()),
            ))
        }
        _ => {}
    }
    match &h.filename {
        Some(_) if h.kind != MediaKind::Document => Err(DomainError::invalid(
            "header.filename",
            "only a document header has a file name",
        )),
        Some(f) if f.trim().is_empty() || f.chars().count() > 240 => Err(DomainError::invalid(
            "header.filename",
            "must have 1 to 240 characters",
        )),
        _ => Ok(()),
    }
}

fn check_buttons(quick_replies: &[String], cta: &[CallToAction]) -> Result<(), DomainError> {
    if !quick_replies.is_empty() && !cta.is_empty() {
        return Err(DomainError::invalid(
            "call_to_action",
            "a template has either quick-reply buttons or call-to-action buttons, never both",
        ));
    }
    if quick_replies.len() > MAX_QUICK_REPLIES {
        return Err(DomainError::invalid(
            "quick_replies",
            format!("at most {MAX_QUICK_REPLIES} quick-reply buttons"),
        ));
    }
    let bad_text = |t: &str| t.trim().is_empty() || t.chars().count() > MAX_BUTTON_TEXT;
    if quick_replies.iter().any(|q| bad_text(q)) {
        return Err(DomainError::invalid(
            "quick_replies",
            format!("each button needs 1 to {MAX_BUTTON_TEXT} characters"),
        ));
    }
    let mut seen = quick_replies.to_vec();
    seen.sort();
    seen.dedup();
    if seen.len() != quick_replies.len() {
        return Err(DomainError::invalid(
            "quick_replies",
            "button texts must differ from each other",
        ));
    }
    let phones = cta
        .iter()
        .filter(|b| matches!(b, CallToAction::PhoneNumber { .. }))
        .count();
    if phones > 1 {
        return Err(DomainError::invalid(
            "call_to_action",
            "at most one phone-number button",
        ));
    }
    if cta.len() - phones > 1 {
        return Err(DomainError::invalid(
            "call_to_action",
            "at most one URL button",
        ));
    }
    for b in cta {
        if bad_text(b.text()) {
            return Err(DomainError::invalid(
                "call_to_action.text",
                format!("each button needs 1 to {MAX_BUTTON_TEXT} characters"),
            ));
        }
        match b {
            CallToAction::PhoneNumber { phone_number, .. } if !is_phone(phone_number) => {
                return Err(DomainError::invalid(
                    "call_to_action.phone_number",
                    "must be a phone number in international form, e.g. +15550783881",
                ))
            }
            CallToAction::Url { url, .. } if url.contains("{{") => {
                let prefix = url.strip_suffix(URL_VARIABLE).unwrap_or("");
                if prefix.contains("{{") || !is_http_url(prefix) {
                    return Err(DomainError::invalid(
                        "call_to_action.url",
                        "a URL button's link may end with one variable, {{1}}, after an http(s) link (https://example.com/t/{{1}})",
                    ));
                }
            }
            CallToAction::Url { url, .. } if !is_http_url(url) => {
                return Err(DomainError::invalid(
                    "call_to_action.url",
                    "must be an http(s) link",
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Template {
    /// Whether a campaign send of this template goes through Meta's Marketing Messages
    /// API: its current category is MARKETING and `account`, a Meta account, opted in.
    pub fn routes_to_marketing_messages(&self, account: &super::account::Account) -> bool {
        account.marketing_messages
            && account.provider == super::account::Provider::Meta
            && self.category == Category::Marketing
    }
    /// Registers a template by hand (R3.1): every structural rule applies.
    pub fn create(tenant: &str, input: NewTemplate, now: Time) -> Result<Self, DomainError> {
        Self::build(tenant, input, now, true)
    }

    fn build(
        tenant: &str,
        input: NewTemplate,
        now: Time,
        require_header_url: bool,
    ) -> Result<Self, DomainError> {
        let account_id = super::account::required("account_id", input.account_id)?;
        let name = super::account::required("name", input.name)?;
        check_name(&name)?;
        let language = super::account::required("language", input.language)?;
        check_language(&language)?;
        let category = input
            .category
            .ok_or_else(|| DomainError::invalid("category", "is required"))?;
        let body = super::account::required("body", input.body)?;
        check_body(&body)?;
        let header = input.header.map(|mut h| {
            h.url = clean(h.url);
            h.filename = clean(h.filename);
            h
        });
        if let Some(h) = &header {
            check_header(h, require_header_url)?;
        }
        let quick_replies: Vec<String> = input
            .quick_replies
            .into_iter()
            .map(|q| q.trim().to_owned())
            .collect();
        check_buttons(&quick_replies, &input.call_to_action)?;
        Ok(Template {
            tenant: tenant.to_owned(),
            account_id,
            name,
            language,
            category,
            body,
            header,
            quick_replies,
            call_to_action: input.call_to_action,
            status: input.status.unwrap_or(TemplateStatus::Approved),
            status_reason: None,
            quality: input.quality.unwrap_or_default(),
            provider_id: clean(input.provider_id),
            created_at: now,
            updated_at: None,
            version: 0,
        })
    }

    /// The template as the provider lists it (R3.4), or why it cannot be kept here.
    pub fn from_provider(
        tenant: &str,
        account_id: &str,
        p: &ProviderTemplate,
        now: Time,
    ) -> Result<Self, String> {
        let status = p
            .status
            .ok_or_else(|| format!("status {} is not tracked", p.provider_status))?;
        let category = p
            .category
            .ok_or("category is not one of MARKETING, UTILITY, AUTHENTICATION")?;
        let header = match &p.header {
            None => None,
            Some(ProviderHeader::Text(t)) if t.contains("{{") => {
                return Err("text headers with a variable are not supported".into())
            }
            // A fixed text header needs nothing at send time.
            Some(ProviderHeader::Text(_)) => None,
            Some(ProviderHeader::Media { kind, example_url }) => Some(MediaHeader {
                kind: *kind,
                url: example_url.clone().filter(|u| is_http_url(u)),
                filename: None,
            }),
            Some(ProviderHeader::Other(f)) => return Err(format!("{f} headers are not supported")),
        };
        let mut quick_replies = Vec::new();
        let mut call_to_action = Vec::new();
        for b in &p.buttons {
            match b {
                ProviderButton::QuickReply(t) => quick_replies.push(t.clone()),
                ProviderButton::CallToAction(c) => call_to_action.push(c.clone()),
                ProviderButton::Other(kind) => {
                    return Err(format!("{kind} buttons are not supported"))
                }
            }
        }
        let input = NewTemplate {
            account_id: Some(account_id.to_owned()),
            name: Some(p.name.clone()),
            language: Some(p.language.clone()),
            category: Some(category),
            body: p.body.clone(),
            header,
            quick_replies,
            call_to_action,
            status: Some(status),
            quality: Some(p.quality),
            provider_id: p.id.clone(),
        };
        let mut t = Self::build(tenant, input, now, false).map_err(|e| e.to_string())?;
        t.status_reason = p.status_reason.clone();
        Ok(t)
    }

    /// Takes the content and status of `fresh` (the same template, registered again or
    /// read from the provider), keeping what is ours: creation time, version, and the
    /// header link when the header kept its type. Returns whether anything changed and the
    /// status before, when it changed.
    pub fn replace_with(&mut self, fresh: Template, now: Time) -> (bool, Option<TemplateStatus>) {
        let mut next = fresh;
        next.created_at = self.created_at;
        next.version = self.version;
        next.updated_at = self.updated_at;
        if let (Some(old), Some(new)) = (&self.header, &mut next.header) {
            if old.kind == new.kind && old.url.is_some() && new.url.is_none() {
                new.url = old.url.clone();
                new.filename = new.filename.take().or_else(|| old.filename.clone());
            }
        }
        if next.provider_id.is_none() {
            next.provider_id = self.provider_id.clone();
        }
        if next == *self {
            return (false, None);
        }
        let from = (next.status != self.status).then_some(self.status);
        next.updated_at = Some(now);
        *self = next;
        (true, from)
    }

    /// Applies an operator's edit (see [`TemplateEdit`] for what may change when).
    pub fn edit(&mut self, e: TemplateEdit, now: Time) -> Result<Edited, DomainError> {
        let mut next = self.clone();
        if let Some(c) = e.category {
            next.category = c;
        }
        if let Some(b) = e.body {
            next.body = b.trim().to_owned();
        }
        if let Some(h) = e.header {
            next.header = h.map(|mut h| {
                h.url = clean(h.url);
                h.filename = clean(h.filename);
                h
            });
        }
        if let Some(q) = e.quick_replies {
            next.quick_replies = q.into_iter().map(|q| q.trim().to_owned()).collect();
        }
        if let Some(c) = e.call_to_action {
            next.call_to_action = c;
        }
        if let Some(q) = e.quality {
            next.quality = q;
        }
        let header_kind = |t: &Template| t.header.as_ref().map(|h| h.kind);
        let content_changed = next.category != self.category
            || next.body != self.body
            || header_kind(&next) != header_kind(self)
            || next.quick_replies != self.quick_replies
            || next.call_to_action != self.call_to_action;
        if content_changed {
            match self.status {
                TemplateStatus::Pending => {
                    return Err(DomainError::Conflict(format!(
                        "template {} ({}) is PENDING: it can be edited once the provider has reviewed it",
                        self.name, self.language
                    )))
                }
                TemplateStatus::Disabled => {
                    return Err(DomainError::Conflict(format!(
                        "template {} ({}) is DISABLED and cannot be edited",
                        self.name, self.language
                    )))
                }
                _ => {}
            }
            check_body(&next.body)?;
            check_buttons(&next.quick_replies, &next.call_to_action)?;
            // Meta reviews an edited template again.
            next.status = TemplateStatus::Pending;
            next.status_reason = None;
        }
        if let Some(h) = &next.header {
            // A header link already missing (synchronised template) may stay missing.
            let had_url = self.header.as_ref().is_some_and(|h| h.url.is_some());
            check_header(h, had_url || header_kind(&next) != header_kind(self))?;
        }
        if let Some(s) = e.status {
            if s != next.status {
                next.status_reason = None;
            }
            next.status = s;
        }
        let status_from = (next.status != self.status).then_some(self.status);
        if next != *self {
            next.updated_at = Some(now);
        }
        *self = next;
        Ok(Edited {
            content_changed,
            status_from,
        })
    }

    /// Applies what the provider says happened (status webhook, quality webhook). Returns
    /// whether anything changed and the status before, when it changed.
    pub fn apply_provider_update(
        &mut self,
        status: Option<TemplateStatus>,
        reason: Option<String>,
        quality: Option<Quality>,
        now: Time,
    ) -> (bool, Option<TemplateStatus>) {
        let before = self.clone();
        if let Some(s) = status {
            self.status = s;
            self.status_reason = reason;
        }
        if let Some(q) = quality {
            self.quality = q;
        }
        if *self == before {
            return (false, None);
        }
        self.updated_at = Some(now);
        (
            true,
            (self.status != before.status).then_some(before.status),
        )
    }

    /// Meta moved the template to `category` (`template_category_update`): the checks
    /// before each send follow it from the next batch on. Returns whether it changed.
    pub fn recategorise(&mut self, category: Category, now: Time) -> bool {
        if self.category == category {
            return false;
        }
        self.category = category;
        self.updated_at = Some(now);
        true
    }

    /// Why nothing can be sent with this template right now (R3.2), in the words a paused
    /// campaign shows: "template spring_offer (en) is PAUSED".
    pub fn blocked_reason(&self) -> Option<String> {
        (self.status != TemplateStatus::Approved).then(|| {
            format!(
                "template {} ({}) is {}",
                self.name, self.language, self.status
            )
        })
    }

    /// Only approved templates may be chosen or sent (R3.2); every placeholder needs a
    /// source (R3.3); a media header needs its link.
    pub fn check_usable(
        &self,
        variables: &[VariableSource],
        url_variable: Option<&VariableSource>,
    ) -> Result<(), DomainError> {
        if self.url_variable_button().is_some() && url_variable.is_none() {
            return Err(DomainError::invalid(
                "url_variable",
                format!(
                    "the URL button of template {} ends with {URL_VARIABLE}: map it to a source",
                    self.name
                ),
            ));
        }
        if let Some(why) = self.blocked_reason() {
            return Err(DomainError::Conflict(format!(
                "{why}, only APPROVED templates can be sent"
            )));
        }
        let n = placeholder_count(&self.body)?;
        if variables.len() < n {
            return Err(DomainError::invalid(
                "variables",
                format!(
                    "placeholder {{{{{}}}}} of template {} has no mapping",
                    variables.len() + 1,
                    self.name
                ),
            ));
        }
        if let Some(h) = self.header.as_ref().filter(|h| h.url.is_none()) {
            return Err(DomainError::invalid(
                "template",
                format!(
                    "template {} ({}) has a {} header without a link: set header.url first",
                    self.name,
                    self.language,
                    h.kind.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// Fills the placeholders for one contact. A missing value names the variable (R3.3).
    pub fn render(
        &self,
        variables: &[VariableSource],
        url_variable: Option<&VariableSource>,
        contact: &ContactData,
    ) -> Result<Rendered, String> {
        let (params, text) = fill(&self.body, variables, contact)?;
        let url_suffix = match self.url_variable_button() {
            Some(index) => match value_of(url_variable, contact) {
                Some(text) => Some(UrlSuffix { index, text }),
                None => return Err("missing value for the URL button's variable".to_owned()),
            },
            None => None,
        };
        Ok(Rendered {
            params,
            text,
            url_suffix,
        })
    }

    /// The index among the buttons of the URL button whose link ends with a variable.
    pub fn url_variable_button(&self) -> Option<usize> {
        self.call_to_action
            .iter()
            .position(|b| matches!(b, CallToAction::Url { url, .. } if url.ends_with(URL_VARIABLE)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(body: &str) -> NewTemplate {
        NewTemplate {
            account_id: Some("acc".into()),
            name: Some("offer".into()),
            language: Some("en".into()),
            category: Some(Category::Marketing),
            body: Some(body.into()),
            quick_replies: vec!["Yes".into(), "No".into()],
            ..Default::default()
        }
    }

    fn template(body: &str) -> Template {
        Template::create("t", input(body), chrono::Utc::now()).unwrap()
    }

    fn field_of(r: Result<Template, DomainError>) -> String {
        match r {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    fn url_button() -> CallToAction {
        CallToAction::Url {
            text: "Shop".into(),
            url: "https://shop.example.com/spring".into(),
        }
    }

    fn phone_button() -> CallToAction {
        CallToAction::PhoneNumber {
            text: "Call us".into(),
            phone_number: "+1 555 078 3881".into(),
        }
    }

    #[test]
    fn r3_1_placeholders_must_be_numbered_and_contiguous() {
        assert_eq!(placeholder_count("Hi {{1}}, {{2}} off, {{1}}").unwrap(), 2);
        assert!(placeholder_count("Hi {{name}}").is_err());
        assert!(placeholder_count("Hi {{2}}").is_err());
        assert!(placeholder_count("Hi {{1}").is_err());
        assert!(placeholder_count("Hi {{0}}").is_err());
    }

    #[test]
    fn r3_1_placeholders_are_written_as_meta_writes_them() {
        assert_eq!(
            placeholder_count("{{1}}{{2}}{{10}}{{3}}{{4}}{{5}}{{6}}{{7}}{{8}}{{9}}").unwrap(),
            10
        );
        for body in [
            "Hi {{ 1 }}",
            "Hi {{01}}",
            "Hi {{+1}}",
            "Hi {{1 }}",
            "Hi {{}}",
            "Hi {{00}}",
        ] {
            let err = placeholder_count(body).unwrap_err();
            assert!(
                matches!(&err, DomainError::Invalid { field, .. } if field == "body"),
                "{body}: {err:?}"
            );
            assert_eq!(
                field_of(Template::create("t", input(body), chrono::Utc::now())),
                "body"
            );
        }
        let err = placeholder_count("Hi {{01}}").unwrap_err().to_string();
        assert!(err.contains("{{1}}"), "{err}");
    }

    #[test]
    fn r3_3_render_fills_each_placeholder_once() {
        let t = template("{{1}} and {{2}}");
        let vars = [
            VariableSource::Text {
                value: "{{2}}".into(),
            },
            VariableSource::Text { value: "b".into() },
        ];
        let r = t.render(&vars, None, &ContactData::default()).unwrap();
        assert_eq!(r.text, "{{2}} and b");
    }

    #[test]
    fn r3_1_body_longer_than_1024_is_rejected() {
        let r = Template::create("t", input(&"a".repeat(1025)), chrono::Utc::now());
        assert_eq!(field_of(r), "body");
        assert!(Template::create("t", input(&"a".repeat(1024)), chrono::Utc::now()).is_ok());
    }

    #[test]
    fn r3_1_quick_replies_and_call_to_action_never_mix() {
        let mut i = input("Hello");
        i.call_to_action = vec![url_button()];
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "call_to_action"
        );
        let mut i = input("Hello");
        i.quick_replies = vec![];
        i.call_to_action = vec![url_button(), phone_button()];
        let t = Template::create("t", i, chrono::Utc::now()).unwrap();
        assert_eq!(t.call_to_action.len(), 2);
    }

    #[test]
    fn r3_1_at_most_one_phone_and_one_url_button() {
        for buttons in [
            vec![url_button(), url_button()],
            vec![phone_button(), phone_button()],
        ] {
            let mut i = input("Hello");
            i.quick_replies = vec![];
            i.call_to_action = buttons;
            assert_eq!(
                field_of(Template::create("t", i, chrono::Utc::now())),
                "call_to_action"
            );
        }
        let mut i = input("Hello");
        i.quick_replies = vec![];
        i.call_to_action = vec![CallToAction::Url {
            text: "Go".into(),
            url: "ftp://x".into(),
        }];
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "call_to_action.url"
        );
        let mut i = input("Hello");
        i.quick_replies = vec![];
        i.call_to_action = vec![CallToAction::PhoneNumber {
            text: "Call".into(),
            phone_number: "call me".into(),
        }];
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "call_to_action.phone_number"
        );
    }

    #[test]
    fn r3_1_quick_replies_up_to_ten_with_short_distinct_labels() {
        let mut i = input("Hello");
        i.quick_replies = (0..10).map(|n| format!("Option {n}")).collect();
        assert!(Template::create("t", i.clone(), chrono::Utc::now()).is_ok());
        i.quick_replies.push("Option 10".into());
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "quick_replies"
        );
        let mut i = input("Hello");
        i.quick_replies = vec!["x".repeat(26)];
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "quick_replies"
        );
        let mut i = input("Hello");
        i.quick_replies = vec!["Yes".into(), "Yes".into()];
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "quick_replies"
        );
    }

    #[test]
    fn r3_1_media_header_needs_a_link_and_only_documents_have_file_names() {
        let with = |h: MediaHeader| {
            let mut i = input("Hello");
            i.header = Some(h);
            Template::create("t", i, chrono::Utc::now())
        };
        let doc = MediaHeader {
            kind: MediaKind::Document,
            url: Some("https://cdn.example.com/terms.pdf".into()),
            filename: Some("terms.pdf".into()),
        };
        assert!(with(doc.clone()).is_ok());
        assert_eq!(
            field_of(with(MediaHeader {
                kind: MediaKind::Image,
                ..doc.clone()
            })),
            "header.filename"
        );
        assert_eq!(
            field_of(with(MediaHeader {
                url: None,
                ..doc.clone()
            })),
            "header.url"
        );
        assert_eq!(
            field_of(with(MediaHeader {
                url: Some("not a link".into()),
                ..doc
            })),
            "header.url"
        );
    }

    #[test]
    fn r3_1_name_and_language_are_checked() {
        let mut i = input("Hello");
        i.name = Some("Spring Offer".into());
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "name"
        );
        let mut i = input("Hello");
        i.language = Some("en#US".into());
        assert_eq!(
            field_of(Template::create("t", i, chrono::Utc::now())),
            "language"
        );
    }

    #[test]
    fn r3_3_placeholders_render_from_contact_fields() {
        let t = template("Hi {{1}}, your code {{2}} gives {{3}} ({{4}})");
        let vars = vec![
            VariableSource::ContactName,
            VariableSource::Field {
                name: "code".into(),
            },
            VariableSource::Text {
                value: "20%".into(),
            },
            VariableSource::ValuedTag {
                name: "tier".into(),
            },
        ];
        let contact = ContactData {
            name: Some("Asha".into()),
            fields: [("code".to_string(), "X1".to_string())].into(),
            valued_tags: [("tier".to_string(), "gold".to_string())].into(),
        };
        let r = t.render(&vars, None, &contact).unwrap();
        assert_eq!(r.params, vec!["Asha", "X1", "20%", "gold"]);
        assert_eq!(r.text, "Hi Asha, your code X1 gives 20% (gold)");
    }

    #[test]
    fn r3_3_missing_value_for_variable_names_the_variable() {
        let t = template("Hi {{1}}, code {{2}}");
        let vars = vec![
            VariableSource::ContactName,
            VariableSource::Field {
                name: "code".into(),
            },
        ];
        let err = t
            .render(
                &vars,
                None,
                &ContactData {
                    name: Some("A".into()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err, "missing value for variable {{2}}");
        let blank = ContactData {
            name: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(
            t.render(&vars, None, &blank).unwrap_err(),
            "missing value for variable {{1}}"
        );
    }

    #[test]
    fn a_url_button_may_end_with_one_variable_mapped_like_the_body() {
        let mut i = input("Hi {{1}}");
        i.quick_replies = vec![];
        i.call_to_action = vec![
            phone_button(),
            CallToAction::Url {
                text: "Track".into(),
                url: "https://shop.example.com/t/{{1}}".into(),
            },
        ];
        let t = Template::create("t", i.clone(), chrono::Utc::now()).unwrap();
        assert_eq!(t.url_variable_button(), Some(1));
        let name = [VariableSource::ContactName];
        let err = t.check_usable(&name, None).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "url_variable"));
        let code = VariableSource::Field {
            name: "code".into(),
        };
        assert!(t.check_usable(&name, Some(&code)).is_ok());
        let mut contact = ContactData {
            name: Some("Asha".into()),
            ..Default::default()
        };
        assert_eq!(
            t.render(&name, Some(&code), &contact).unwrap_err(),
            "missing value for the URL button's variable"
        );
        contact.fields.insert("code".into(), "K7".into());
        let r = t.render(&name, Some(&code), &contact).unwrap();
        assert_eq!(
            r.url_suffix,
            Some(UrlSuffix {
                index: 1,
                text: "K7".into()
            })
        );
        // One variable, at the end, after a real link.
        for bad in [
            "https://x.example/{{1}}/{{2}}",
            "https://x.example/{{2}}",
            "https://x.example/{{1}}?a=b",
            "{{1}}",
        ] {
            let mut j = i.clone();
            j.call_to_action = vec![CallToAction::Url {
                text: "Go".into(),
                url: bad.into(),
            }];
            assert_eq!(
                field_of(Template::create("t", j, chrono::Utc::now())),
                "call_to_action.url",
                "{bad}"
            );
        }
    }

    #[test]
    fn r3_3_unmapped_placeholder_blocks_use() {
        let t = template("Hi {{1}}, code {{2}}");
        let err = t
            .check_usable(&[VariableSource::ContactName], None)
            .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "variables"));
        assert!(t
            .check_usable(
                &[
                    VariableSource::ContactName,
                    VariableSource::Text { value: "X".into() }
                ],
                None
            )
            .is_ok());
    }

    #[test]
    fn r3_2_only_approved_templates_are_usable() {
        let mut t = template("Hello");
        for s in [
            TemplateStatus::Pending,
            TemplateStatus::Rejected,
            TemplateStatus::Paused,
            TemplateStatus::Disabled,
        ] {
            t.status = s;
            assert!(matches!(
                t.check_usable(&[], None),
                Err(DomainError::Conflict(_))
            ));
        }
        t.status = TemplateStatus::Paused;
        assert_eq!(
            t.blocked_reason().as_deref(),
            Some("template offer (en) is PAUSED")
        );
        t.status = TemplateStatus::Approved;
        assert_eq!(t.blocked_reason(), None);
        assert!(t.check_usable(&[], None).is_ok());
    }

    #[test]
    fn r3_2_provider_updates_change_status_and_quality() {
        let mut t = template("Hello");
        let now = chrono::Utc::now();
        assert_eq!(
            t.apply_provider_update(
                Some(TemplateStatus::Paused),
                Some("low quality".into()),
                None,
                now
            ),
            (true, Some(TemplateStatus::Approved))
        );
        assert_eq!(t.status_reason.as_deref(), Some("low quality"));
        assert_eq!(
            t.apply_provider_update(
                Some(TemplateStatus::Paused),
                Some("low quality".into()),
                None,
                now
            ),
            (false, None),
            "a replayed webhook changes nothing"
        );
        assert_eq!(
            t.apply_provider_update(None, None, Some(Quality::Red), now),
            (true, None)
        );
        assert_eq!(t.quality, Quality::Red);
    }

    #[test]
    fn r3_1_edits_wait_for_review_and_send_the_template_back_to_review() {
        let now = chrono::Utc::now();
        let mut t = template("Hello {{1}}");
        t.status = TemplateStatus::Pending;
        let e = TemplateEdit {
            body: Some("Hi {{1}}".into()),
            ..Default::default()
        };
        assert!(matches!(
            t.edit(e.clone(), now),
            Err(DomainError::Conflict(_))
        ));
        t.status = TemplateStatus::Rejected;
        let done = t.edit(e, now).unwrap();
        assert!(done.content_changed);
        assert_eq!(done.status_from, Some(TemplateStatus::Rejected));
        assert_eq!(
            (t.status, t.body.as_str()),
            (TemplateStatus::Pending, "Hi {{1}}")
        );

        // The header's link is ours: it changes in any status without a review.
        let mut t = template("Hello");
        t.header = Some(MediaHeader {
            kind: MediaKind::Image,
            url: None,
            filename: None,
        });
        t.status = TemplateStatus::Approved;
        let done = t
            .edit(
                TemplateEdit {
                    header: Some(Some(MediaHeader {
                        kind: MediaKind::Image,
                        url: Some("https://cdn.example.com/a.jpg".into()),
                        filename: None,
                    })),
                    ..Default::default()
                },
                now,
            )
            .unwrap();
        assert!(!done.content_changed);
        assert_eq!(t.status, TemplateStatus::Approved);
        // Buttons still follow the rules on edit.
        let err = t
            .edit(
                TemplateEdit {
                    call_to_action: Some(vec![url_button()]),
                    ..Default::default()
                },
                now,
            )
            .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "call_to_action"));
    }

    #[test]
    fn r3_4_provider_copy_keeps_our_header_link() {
        let now = chrono::Utc::now();
        let p = ProviderTemplate {
            id: Some("99".into()),
            name: "offer".into(),
            language: "en".into(),
            status: Some(TemplateStatus::Approved),
            provider_status: "APPROVED".into(),
            category: Some(Category::Marketing),
            quality: Quality::Green,
            status_reason: None,
            body: Some("Hi {{1}}".into()),
            header: Some(ProviderHeader::Media {
                kind: MediaKind::Image,
                example_url: None,
            }),
            buttons: vec![ProviderButton::QuickReply("Yes".into())],
        };
        let mut stored = Template::from_provider("t", "acc", &p, now).unwrap();
        assert_eq!(stored.header.as_ref().unwrap().url, None);
        stored.header.as_mut().unwrap().url = Some("https://cdn.example.com/x.jpg".into());
        let fresh = Template::from_provider("t", "acc", &p, now).unwrap();
        assert_eq!(stored.replace_with(fresh.clone(), now), (false, None));
        let mut paused = p.clone();
        paused.status = Some(TemplateStatus::Paused);
        let fresh = Template::from_provider("t", "acc", &paused, now).unwrap();
        assert_eq!(
            stored.replace_with(fresh, now),
            (true, Some(TemplateStatus::Approved))
        );
        assert_eq!(
            stored.header.as_ref().unwrap().url.as_deref(),
            Some("https://cdn.example.com/x.jpg")
        );
        let mut odd = p.clone();
        odd.buttons = vec![ProviderButton::Other("COPY_CODE".into())];
        assert_eq!(
            Template::from_provider("t", "acc", &odd, now).unwrap_err(),
            "COPY_CODE buttons are not supported"
        );
        odd.status = None;
        odd.provider_status = "IN_APPEAL".into();
        assert!(Template::from_provider("t", "acc", &odd, now).is_err());
    }
}
