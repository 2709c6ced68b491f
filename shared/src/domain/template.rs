//! WhatsApp templates: structure, placeholders and rendering (R3.1-R3.3 subset).

use super::{DomainError, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

pub const MAX_BODY_CHARS: usize = 1024;
/// Meta allows up to ten quick-reply buttons on a template.
pub const MAX_QUICK_REPLIES: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub tenant: String,
    pub account_id: String,
    pub name: String,
    pub language: String,
    pub category: Category,
    pub body: String,
    /// Quick-reply button texts, in order.
    #[serde(default)]
    pub quick_replies: Vec<String>,
    pub status: TemplateStatus,
    pub created_at: Time,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewTemplate {
    pub account_id: Option<String>,
    pub name: Option<String>,
    pub language: Option<String>,
    pub category: Option<Category>,
    pub body: Option<String>,
    #[serde(default)]
    pub quick_replies: Vec<String>,
    /// Registering by hand records the status the provider gave; default APPROVED.
    pub status: Option<TemplateStatus>,
}

/// Where a placeholder's value comes from (R3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Counts the numbered placeholders of a body and checks they run `{{1}}..{{n}}`.
pub fn placeholder_count(body: &str) -> Result<usize, DomainError> {
    let mut seen = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| DomainError::invalid("body", "has '{{' without a closing '}}'"))?;
        let inner = after[..end].trim();
        let n: usize = inner.parse().map_err(|_| {
            DomainError::invalid(
                "body",
                format!("placeholder '{{{{{inner}}}}}' must be a number like {{{{1}}}}"),
            )
        })?;
        if n == 0 {
            return Err(DomainError::invalid("body", "placeholders start at {{1}}"));
        }
        seen.push(n);
        rest = &after[end + 2..];
    }
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

impl Template {
    pub fn create(tenant: &str, input: NewTemplate, now: Time) -> Result<Self, DomainError> {
        let account_id = super::account::required("account_id", input.account_id)?;
        let name = super::account::required("name", input.name)?;
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(DomainError::invalid(
                "name",
                "use lowercase letters, digits and '_' as Meta does",
            ));
        }
        let language = super::account::required("language", input.language)?;
        let body = super::account::required("body", input.body)?;
        if body.chars().count() > MAX_BODY_CHARS {
            return Err(DomainError::invalid(
                "body",
                format!("must be at most {MAX_BODY_CHARS} characters"),
            ));
        }
        placeholder_count(&body)?;
        if input.quick_replies.len() > MAX_QUICK_REPLIES {
            return Err(DomainError::invalid(
                "quick_replies",
                format!("at most {MAX_QUICK_REPLIES} quick-reply buttons"),
            ));
        }
        if input
            .quick_replies
            .iter()
            .any(|q| q.trim().is_empty() || q.chars().count() > 25)
        {
            return Err(DomainError::invalid(
                "quick_replies",
                "each button needs 1 to 25 characters",
            ));
        }
        Ok(Template {
            tenant: tenant.to_owned(),
            account_id,
            name,
            language,
            category: input
                .category
                .ok_or_else(|| DomainError::invalid("category", "is required"))?,
            body,
            quick_replies: input.quick_replies,
            status: input.status.unwrap_or(TemplateStatus::Approved),
            created_at: now,
        })
    }

    /// Only approved templates may be chosen or sent (R3.2); every placeholder needs a
    /// source (R3.3).
    pub fn check_usable(&self, variables: &[VariableSource]) -> Result<(), DomainError> {
        if self.status != TemplateStatus::Approved {
            return Err(DomainError::Conflict(format!(
                "template {} ({}) is {:?}, only APPROVED templates can be sent",
                self.name, self.language, self.status
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
        Ok(())
    }

    /// Fills the placeholders for one contact. A missing value names the variable (R3.3).
    pub fn render(
        &self,
        variables: &[VariableSource],
        contact: &ContactData,
    ) -> Result<Rendered, String> {
        let n = placeholder_count(&self.body).map_err(|e| e.to_string())?;
        let mut params = Vec::with_capacity(n);
        for i in 0..n {
            let value = match variables.get(i) {
                Some(VariableSource::Text { value }) => Some(value.clone()),
                Some(VariableSource::ContactName) => contact.name.clone(),
                Some(VariableSource::Field { name }) => contact.fields.get(name).cloned(),
                Some(VariableSource::ValuedTag { name }) => contact.valued_tags.get(name).cloned(),
                None => None,
            };
            match value {
                Some(v) if !v.trim().is_empty() => params.push(v),
                _ => return Err(format!("missing value for variable {{{{{}}}}}", i + 1)),
            }
        }
        let mut text = self.body.clone();
        for (i, p) in params.iter().enumerate() {
            text = text.replace(&format!("{{{{{}}}}}", i + 1), p);
        }
        Ok(Rendered { params, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(body: &str) -> Template {
        Template::create(
            "t",
            NewTemplate {
                account_id: Some("acc".into()),
                name: Some("offer".into()),
                language: Some("en".into()),
                category: Some(Category::Marketing),
                body: Some(body.into()),
                quick_replies: vec!["Yes".into(), "No".into()],
                status: None,
            },
            chrono::Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn r3_1_placeholders_must_be_numbered_and_contiguous() {
        assert_eq!(placeholder_count("Hi {{1}}, {{2}} off, {{1}}").unwrap(), 2);
        assert!(placeholder_count("Hi {{name}}").is_err());
        assert!(placeholder_count("Hi {{2}}").is_err());
        assert!(placeholder_count("Hi {{1}").is_err());
    }

    #[test]
    fn r3_1_body_longer_than_1024_is_rejected() {
        let r = Template::create(
            "t",
            NewTemplate {
                account_id: Some("acc".into()),
                name: Some("x".into()),
                language: Some("en".into()),
                category: Some(Category::Utility),
                body: Some("a".repeat(1025)),
                quick_replies: vec![],
                status: None,
            },
            chrono::Utc::now(),
        );
        assert!(matches!(r, Err(DomainError::Invalid { field, .. }) if field == "body"));
    }

    #[test]
    fn r3_3_placeholders_render_from_contact_fields() {
        let t = template("Hi {{1}}, your code {{2}} gives {{3}}");
        let vars = vec![
            VariableSource::ContactName,
            VariableSource::Field {
                name: "code".into(),
            },
            VariableSource::Text {
                value: "20%".into(),
            },
        ];
        let contact = ContactData {
            name: Some("Asha".into()),
            fields: [("code".to_string(), "X1".to_string())].into(),
            ..Default::default()
        };
        let r = t.render(&vars, &contact).unwrap();
        assert_eq!(r.params, vec!["Asha", "X1", "20%"]);
        assert_eq!(r.text, "Hi Asha, your code X1 gives 20%");
    }

    #[test]
    fn r3_3_missing_value_names_the_variable() {
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
                &ContactData {
                    name: Some("A".into()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err, "missing value for variable {{2}}");
    }

    #[test]
    fn r3_3_unmapped_placeholder_blocks_use() {
        let t = template("Hi {{1}}, code {{2}}");
        let err = t.check_usable(&[VariableSource::ContactName]).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "variables"));
    }

    #[test]
    fn r3_2_only_approved_templates_are_usable() {
        let mut t = template("Hello");
        t.status = TemplateStatus::Paused;
        assert!(matches!(t.check_usable(&[]), Err(DomainError::Conflict(_))));
    }
}
