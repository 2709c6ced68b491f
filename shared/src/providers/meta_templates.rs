//! Meta's template list (R3.4): `GET {graph}/{version}/{waba_id}/message_templates`, paged
//! with `after` cursors, and the mapping of Meta's template vocabulary (statuses, quality
//! ratings, categories, components) onto ours. The webhook parser (`super::meta`) uses the
//! same mapping for template status and quality updates.

use crate::domain::account::Account;
use crate::domain::template::{
    CallToAction, Category, MediaKind, ProviderButton, ProviderHeader, ProviderTemplate,
    ProviderTemplatePage, Quality, TemplateListError, TemplateStatus,
};
use crate::ports::{Secrets, TemplateSource};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// Templates asked for per page.
pub const PAGE_SIZE: u32 = 100;
/// Fields asked for: `quality_score` and `rejected_reason` are not in Meta's default set.
pub const FIELDS: &str =
    "id,name,language,status,category,quality_score,rejected_reason,components";

/// What a Meta template status (the list's `status`, or a status webhook's `event`)
/// means here. Events that do not change whether a template can be sent (FLAGGED,
/// LOCKED, UNLOCKED, LIMIT_EXCEEDED, ...) mean none.
pub fn status_from_meta(s: &str) -> Option<TemplateStatus> {
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "APPROVED" | "REINSTATED" => TemplateStatus::Approved,
        "PENDING" | "IN_APPEAL" => TemplateStatus::Pending,
        "REJECTED" => TemplateStatus::Rejected,
        "PAUSED" => TemplateStatus::Paused,
        "DISABLED" | "DELETED" | "PENDING_DELETION" | "ARCHIVED" => TemplateStatus::Disabled,
        _ => return None,
    })
}

/// Meta's quality rating (templates: GREEN/YELLOW/RED/UNKNOWN; HIGH/MEDIUM/LOW accepted).
pub fn quality_from_meta(s: &str) -> Option<Quality> {
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "GREEN" | "HIGH" => Quality::Green,
        "YELLOW" | "MEDIUM" => Quality::Yellow,
        "RED" | "LOW" => Quality::Red,
        "UNKNOWN" => Quality::Unknown,
        _ => return None,
    })
}

pub fn category_from_meta(s: &str) -> Option<Category> {
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "MARKETING" => Category::Marketing,
        "UTILITY" => Category::Utility,
        "AUTHENTICATION" => Category::Authentication,
        _ => return None,
    })
}

/// Meta writes "NONE" when there is no reason.
pub fn meaningful_reason(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|r| !r.is_empty() && !r.eq_ignore_ascii_case("NONE"))
        .map(str::to_owned)
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn header(c: &Value) -> ProviderHeader {
    let format = text(c, "format").unwrap_or_default().to_ascii_uppercase();
    let kind = match format.as_str() {
        "TEXT" => return ProviderHeader::Text(text(c, "text").unwrap_or_default()),
        "IMAGE" => MediaKind::Image,
        "VIDEO" => MediaKind::Video,
        "DOCUMENT" => MediaKind::Document,
        _ => return ProviderHeader::Other(format),
    };
    let example_url = c
        .get("example")
        .and_then(|e| e.get("header_handle"))
        .and_then(|h| h.get(0))
        .and_then(Value::as_str)
        .map(str::to_owned);
    ProviderHeader::Media { kind, example_url }
}

fn button(b: &Value) -> ProviderButton {
    let kind = text(b, "type").unwrap_or_default().to_ascii_uppercase();
    let label = text(b, "text").unwrap_or_default();
    match kind.as_str() {
        "QUICK_REPLY" => ProviderButton::QuickReply(label),
        "URL" => ProviderButton::CallToAction(CallToAction::Url {
            text: label,
            url: text(b, "url").unwrap_or_default(),
        }),
        "PHONE_NUMBER" => ProviderButton::CallToAction(CallToAction::PhoneNumber {
            text: label,
            phone_number: text(b, "phone_number").unwrap_or_default(),
        }),
        _ => ProviderButton::Other(kind),
    }
}

/// One entry of Meta's `data` array; `None` without a name or language (it could not be
/// stored under any key).
pub fn parse_template(v: &Value) -> Option<ProviderTemplate> {
    let name = text(v, "name").filter(|s| !s.is_empty())?;
    let language = text(v, "language").filter(|s| !s.is_empty())?;
    let provider_status = text(v, "status").unwrap_or_default();
    let mut t = ProviderTemplate {
        id: text(v, "id"),
        status: status_from_meta(&provider_status),
        provider_status,
        category: text(v, "category").as_deref().and_then(category_from_meta),
        quality: v
            .get("quality_score")
            .and_then(|q| q.get("score"))
            .and_then(Value::as_str)
            .and_then(quality_from_meta)
            .unwrap_or_default(),
        status_reason: meaningful_reason(v.get("rejected_reason").and_then(Value::as_str)),
        body: None,
        header: None,
        buttons: Vec::new(),
        name,
        language,
    };
    for c in v
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match text(c, "type")
            .unwrap_or_default()
            .to_ascii_uppercase()
            .as_str()
        {
            "BODY" => t.body = text(c, "text"),
            "HEADER" => t.header = Some(header(c)),
            "BUTTONS" => t.buttons.extend(
                c.get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(button),
            ),
            // FOOTER and anything newer need nothing at send time.
            _ => {}
        }
    }
    Some(t)
}

/// What a template-list answer means: a page, or the failure. A Meta error body wins
/// whatever the HTTP status. The next cursor is given only while Meta links a next page.
pub fn interpret_page(status: u16, body: &[u8]) -> Result<ProviderTemplatePage, TemplateListError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(err) = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object())
    {
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        let code = err.get("code").and_then(|c| match c {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        return Err(TemplateListError {
            code,
            reason: match code {
                Some(c) => format!("Meta refused the template list: {message} ({c})"),
                None => format!("Meta refused the template list: {message}"),
            },
        });
    }
    let Some(json) = json.filter(|_| (200..300).contains(&status)) else {
        return Err(TemplateListError {
            code: None,
            reason: format!("HTTP {status} from Meta without a template list"),
        });
    };
    let Some(data) = json.get("data").and_then(Value::as_array) else {
        return Err(TemplateListError {
            code: None,
            reason: "Meta's answer has no data array".into(),
        });
    };
    let templates = data
        .iter()
        .filter_map(|v| {
            let t = parse_template(v);
            if t.is_none() {
                tracing::warn!("meta template without a name or language skipped");
            }
            t
        })
        .collect();
    let paging = json.get("paging");
    let has_next = paging
        .and_then(|p| p.get("next"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let after = paging
        .and_then(|p| p.get("cursors"))
        .and_then(|c| c.get("after"))
        .and_then(Value::as_str)
        .filter(|a| has_next && !a.is_empty())
        .map(str::to_owned);
    Ok(ProviderTemplatePage { templates, after })
}

/// `TemplateSource` over the Graph API.
#[derive(Clone)]
pub struct MetaTemplates {
    http: reqwest::Client,
    base_url: String,
    version: String,
    secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for MetaTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaTemplates")
            .field("base_url", &self.base_url)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MetaTemplates {
    /// `base_url` like `https://graph.facebook.com`, `version` like `v23.0`; the same
    /// timeouts as the sending adapter.
    pub fn new(
        base_url: impl Into<String>,
        version: impl Into<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        Self::with_client(super::http_client(), base_url, version, secrets)
    }

    /// The same on a given client (the process's one client: `compose`).
    pub fn with_client(
        http: reqwest::Client,
        base_url: impl Into<String>,
        version: impl Into<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        MetaTemplates {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            version: version.into().trim_matches('/').to_owned(),
            secrets,
        }
    }

    /// `{base}/{version}/{waba_id}/message_templates`.
    pub fn list_url(&self, waba_id: &str) -> String {
        format!(
            "{}/{}/{}/message_templates",
            self.base_url, self.version, waba_id
        )
    }
}

impl MetaTemplates {
    /// The account's token, by the rules sends follow ([`super::credential`]): a reference
    /// outside the tenant's namespace is refused as unavailable.
    async fn token(&self, account: &Account) -> Result<String, TemplateListError> {
        super::credential(&*self.secrets, account, "Meta")
            .await
            .map_err(|f| TemplateListError {
                code: None,
                reason: f.reason,
            })
    }
}

/// Fields of a phone number that tell its messaging limit: the 2026 name, then the older.
const LIMIT_FIELDS: &str = "whatsapp_business_manager_messaging_limit,messaging_limit_tier";

#[async_trait]
impl TemplateSource for MetaTemplates {
    async fn messaging_limit_tier(
        &self,
        account: &Account,
    ) -> Result<Option<String>, TemplateListError> {
        let failed = |reason: String| TemplateListError { code: None, reason };
        let token = self.token(account).await?;
        let url = format!(
            "{}/{}/{}?fields={LIMIT_FIELDS}",
            self.base_url, self.version, account.sender_id
        );
        let resp = self
            .http
            .get(url)
            .bearer_auth(token.trim())
            .send()
            .await
            .map_err(|e| failed(format!("Meta number read failed: {}", e.without_url())))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| failed(format!("Meta number read failed: {}", e.without_url())))?;
        if !status.is_success() {
            return Err(failed(format!("Meta number read: HTTP {status}")));
        }
        let tier = [
            "whatsapp_business_manager_messaging_limit",
            "messaging_limit_tier",
        ]
        .iter()
        .find_map(|f| body.get(*f).and_then(Value::as_str))
        .map(str::to_owned);
        Ok(tier)
    }

    async fn list_templates(
        &self,
        account: &Account,
        waba_id: &str,
        after: Option<&str>,
    ) -> Result<ProviderTemplatePage, TemplateListError> {
        let token = self.token(account).await?;
        let limit = PAGE_SIZE.to_string();
        let mut query = vec![("limit", limit.as_str()), ("fields", FIELDS)];
        if let Some(a) = after {
            query.push(("after", a));
        }
        let failed = |e: reqwest::Error| TemplateListError {
            code: None,
            reason: format!("Meta template list failed: {}", e.without_url()),
        };
        let url =
            reqwest::Url::parse_with_params(&self.list_url(waba_id), &query).map_err(|e| {
                TemplateListError {
                    code: None,
                    reason: format!("invalid template list URL: {e}"),
                }
            })?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(token.trim())
            .send()
            .await
            .map_err(failed)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(failed)?;
        let page = interpret_page(status, &bytes);
        match &page {
            Ok(p) => {
                tracing::debug!(account = %account.id, count = p.templates.len(), more = p.after.is_some(), "meta template page")
            }
            Err(e) => {
                tracing::warn!(account = %account.id, http_status = status, code = ?e.code, reason = %e.reason, "meta template list failed")
            }
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn r3_4_meta_template_maps_onto_ours() {
        let v = json!({"name": "spring_offer", "language": "en", "status": "APPROVED",
            "category": "MARKETING", "id": "123", "quality_score": {"score": "YELLOW"},
            "components": [
                {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["https://scontent.example/x.pdf"]}},
                {"type": "BODY", "text": "Hi {{1}}"},
                {"type": "FOOTER", "text": "Reply STOP to opt out"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "Shop", "url": "https://shop.example.com"},
                    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550783881"}]}]});
        let t = parse_template(&v).unwrap();
        assert_eq!(t.status, Some(TemplateStatus::Approved));
        assert_eq!(t.category, Some(Category::Marketing));
        assert_eq!(t.quality, Quality::Yellow);
        assert_eq!(t.body.as_deref(), Some("Hi {{1}}"));
        assert_eq!(
            t.header,
            Some(ProviderHeader::Media {
                kind: MediaKind::Document,
                example_url: Some("https://scontent.example/x.pdf".into())
            })
        );
        assert_eq!(t.buttons.len(), 2);
        assert!(parse_template(&json!({"name": "x"})).is_none());
    }

    #[test]
    fn r3_4_paging_follows_next_and_errors_carry_the_code() {
        let page = interpret_page(
            200,
            br#"{"data":[{"name":"a","language":"en"}],"paging":{"cursors":{"after":"QVFI"},"next":"https://x"}}"#,
        )
        .unwrap();
        assert_eq!(page.after.as_deref(), Some("QVFI"));
        let last =
            interpret_page(200, br#"{"data":[],"paging":{"cursors":{"after":"QVFI"}}}"#).unwrap();
        assert_eq!(last.after, None);
        let err =
            interpret_page(401, br#"{"error":{"message":"bad token","code":190}}"#).unwrap_err();
        assert_eq!(err.code, Some(190));
        assert!(interpret_page(502, b"<html>").is_err());
    }

    #[test]
    fn r3_2_meta_statuses_map_onto_ours() {
        assert_eq!(status_from_meta("PAUSED"), Some(TemplateStatus::Paused));
        assert_eq!(
            status_from_meta("PENDING_DELETION"),
            Some(TemplateStatus::Disabled)
        );
        assert_eq!(
            status_from_meta("REINSTATED"),
            Some(TemplateStatus::Approved)
        );
        assert_eq!(status_from_meta("FLAGGED"), None);
        assert_eq!(quality_from_meta("RED"), Some(Quality::Red));
        assert_eq!(meaningful_reason(Some("NONE")), None);
    }
}
