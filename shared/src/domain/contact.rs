//! Contacts, lists and segments (R2.1-R2.3).
//!
//! **Upsert semantics.** A contact is keyed by its phone number. Creating and updating are
//! one operation ([`Contact::apply`]) whose rule is *what the request gives replaces, what
//! it leaves out stays*:
//!
//! - `name`, `email`, `mobile`: given replaces; absent or `null` keeps the stored value; an
//!   empty string clears it (`mobile` falls back to the phone).
//! - `tags`: given replaces the whole set (`[]` clears it); absent keeps it.
//! - `valued_tags` and `fields`: merged key by key; a key given with a value sets it, a key
//!   given with `null` or `""` removes it, keys not given stay.
//!
//! The CSV import maps each row onto the same input with empty cells left out, so an import
//! never wipes data with blank cells.
//!
//! **Phone and mobile.** `phone` is the key. If only one of `phone` and `mobile` is given
//! the other is copied from it (R2.1): a contact created with only a mobile number is keyed
//! by that number. Both are validated against libphonenumber's metadata for their country
//! here (the contacts API and the import reject invalid numbers with a 422 naming the
//! field), with one exception: a number with fewer than five digits (an extension or a
//! typo carried over from another system) is stored, flagged in `invalid_phone` with the
//! seed's text, so the campaigns it is attached to show it as R4.4 says (FAILED
//! "Invalid Number", or BLOCK_LIST) instead of it vanishing at the door.
//!
//! **Tags.** Tags and valued-tag keys are trimmed and lower-cased; valued-tag values keep
//! their case but are matched without it. They feed the segmentation index ([`index_keys`]).

use super::account::required;
use super::phone::PhoneNumber;
use super::template::ContactData;
use super::{new_id, DomainError, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many tags, valued tags and custom fields on one contact (each tag and
/// valued tag is an index item written with the contact).
pub const MAX_TAGS: usize = 50;
pub const MAX_FIELDS: usize = 100;
pub const MAX_KEY_CHARS: usize = 64;
pub const MAX_VALUE_CHARS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "tenant": "acme", "phone": "919812345678", "mobile": "919812345678", "region": "IN",
    "name": "Asha", "email": "asha@example.com", "tags": ["vip"],
    "valued_tags": {"city": "Pune"}, "fields": {"code": "SPRING1"},
    "created_at": "2026-11-21T09:00:00Z", "updated_at": "2026-11-21T09:00:00Z", "version": 1
}))]
pub struct Contact {
    pub tenant: String,
    /// International form without '+'; the contact's key.
    pub phone: PhoneNumber,
    /// Copied from `phone` when not given.
    #[serde(default)]
    pub mobile: Option<PhoneNumber>,
    /// ISO region of `phone` (`IN`, `US`), for calling hours.
    #[serde(default)]
    pub region: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Key -> value (`city` -> `Pune`); templates can use them (R3.3).
    #[serde(default)]
    pub valued_tags: BTreeMap<String, String>,
    /// Custom fields; templates can use them (R3.3).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Why no message can reach this number, when none can: fewer than five digits
    /// (R4.4). Campaigns keep such a contact in their hopper, never sending to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_phone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Time>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
    /// Optimistic-concurrency version (0 = never stored).
    #[serde(default)]
    pub version: u64,
}

/// A contact to create or update; see the module docs for what each attribute does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "phone": "+91 98123 45678", "name": "Asha", "email": "asha@example.com",
    "tags": ["vip", "gold"], "valued_tags": {"city": "Pune"}, "fields": {"code": "SPRING1"}
}))]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Replaces the tag set when given.
    pub tags: Option<Vec<String>>,
    /// Merged key by key; `null` or `""` removes a key.
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub valued_tags: Option<BTreeMap<String, Option<String>>>,
    /// Merged key by key; `null` or `""` removes a key.
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub fields: Option<BTreeMap<String, Option<String>>>,
}

impl NewContact {
    /// The key this input addresses: `phone`, else `mobile`, normalised and validated.
    pub fn key(&self) -> Result<PhoneNumber, DomainError> {
        self.checked_key().map(|k| k.phone)
    }

    /// [`Self::key`] with the number's region, from one validation.
    pub fn checked_key(&self) -> Result<CheckedKey, DomainError> {
        let (raw, field) = match (&self.phone, &self.mobile) {
            (Some(p), _) if !p.trim().is_empty() => (p, "phone"),
            (_, Some(m)) if !m.trim().is_empty() => (m, "mobile"),
            _ => {
                return Err(DomainError::invalid(
                    "phone",
                    "is required (or give mobile, which is then copied to phone)",
                ))
            }
        };
        let phone = PhoneNumber::parse(raw).map_err(|e| match e {
            DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
            other => other,
        })?;
        // A number too short to dial is stored, flagged (R4.4); any other is checked
        // against its country's numbering plan.
        let region = if phone.is_dialable() {
            phone.validate(field)?
        } else {
            None
        };
        Ok(CheckedKey { phone, region })
    }
}

fn clean_key(kind: &str, field: &str, raw: &str) -> Result<String, DomainError> {
    let k = raw.trim().to_lowercase();
    if k.is_empty() {
        return Err(DomainError::invalid(
            field,
            format!("a {kind} cannot be empty"),
        ));
    }
    if k.chars().count() > MAX_KEY_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("{kind} '{k}' is longer than {MAX_KEY_CHARS} characters"),
        ));
    }
    if k.chars().any(|c| c.is_control() || c == '#' || c == '=') {
        return Err(DomainError::invalid(
            field,
            format!("{kind} '{k}' contains '#', '=' or a control character"),
        ));
    }
    Ok(k)
}

fn clean_value(field: &str, raw: &str) -> Result<Option<String>, DomainError> {
    let v = raw.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > MAX_VALUE_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("is longer than {MAX_VALUE_CHARS} characters"),
        ));
    }
    Ok(Some(v.to_owned()))
}

/// The normalised form of a tag (what the index and the segment selector compare).
pub fn normalise_tag(raw: &str) -> Result<String, DomainError> {
    clean_key("tag", "tags", raw)
}

/// Index key of a tag.
pub fn tag_key(tag: &str) -> String {
    format!("TAG#{tag}")
}

/// Index key of a valued tag: the value is matched without case.
pub fn valued_tag_key(key: &str, value: &str) -> String {
    format!("VTAG#{key}={}", value.to_lowercase())
}

/// Every segmentation index key a contact is listed under: one per tag and one per
/// valued tag (R2.3).
pub fn index_keys(c: &Contact) -> BTreeSet<String> {
    c.tags
        .iter()
        .map(|t| tag_key(t))
        .chain(c.valued_tags.iter().map(|(k, v)| valued_tag_key(k, v)))
        .collect()
}

fn merge_map(
    field: &str,
    kind: &str,
    target: &mut BTreeMap<String, String>,
    given: BTreeMap<String, Option<String>>,
    lower_keys: bool,
    max: usize,
) -> Result<(), DomainError> {
    for (k, v) in given {
        let key = if lower_keys {
            clean_key(kind, &format!("{field}.{k}"), &k)?
        } else {
            let k = k.trim().to_owned();
            if k.is_empty() || k.chars().count() > MAX_KEY_CHARS {
                return Err(DomainError::invalid(
                    field,
                    format!("field names need 1 to {MAX_KEY_CHARS} characters"),
                ));
            }
            k
        };
        match v
            .as_deref()
            .map(|v| clean_value(&format!("{field}.{key}"), v))
            .transpose()?
            .flatten()
        {
            Some(v) => {
                target.insert(key, v);
            }
            None => {
                target.remove(&key);
            }
        }
    }
    if target.len() > max {
        return Err(DomainError::invalid(
            field,
            format!("a contact has at most {max} {kind}s"),
        ));
    }
    Ok(())
}

/// A validated contact key and its region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedKey {
    pub phone: PhoneNumber,
    pub region: Option<String>,
}

impl Contact {
    /// Creates the contact, or applies the input onto the stored one (`existing`, which
    /// must have the same key). Validation errors name the input field.
    pub fn apply(
        tenant: &str,
        existing: Option<Contact>,
        input: NewContact,
        now: Time,
    ) -> Result<Self, DomainError> {
        let key = input.checked_key()?;
        Self::apply_keyed(tenant, existing, &key, input, now)
    }

    /// [`Self::apply`] with the key already validated (`input.checked_key()`), so bulk
    /// imports validate each number once.
    pub fn apply_keyed(
        tenant: &str,
        existing: Option<Contact>,
        key: &CheckedKey,
        input: NewContact,
        now: Time,
    ) -> Result<Self, DomainError> {
        let mobile = match input.mobile.as_deref().map(str::trim) {
            Some("") => Some(None),
            Some(m) => {
                let p = PhoneNumber::parse(m).map_err(|e| match e {
                    DomainError::Invalid { message, .. } => DomainError::invalid("mobile", message),
                    other => other,
                })?;
                if p != key.phone {
                    p.check_valid("mobile")?;
                }
                Some(Some(p))
            }
            None => None,
        };
        let key_region = key.region.clone();
        let key = key.phone.clone();
        let mut c = match existing {
            Some(c) => {
                debug_assert_eq!(c.phone, key);
                c
            }
            None => Contact {
                tenant: tenant.to_owned(),
                phone: key.clone(),
                mobile: None,
                region: None,
                name: None,
                email: None,
                tags: BTreeSet::new(),
                valued_tags: BTreeMap::new(),
                fields: BTreeMap::new(),
                invalid_phone: None,
                created_at: Some(now),
                updated_at: now,
                version: 0,
            },
        };
        if let Some(m) = mobile {
            c.mobile = m;
        }
        c.invalid_phone =
            (!c.phone.is_dialable()).then(|| super::phone::short_phone_error(&c.phone));
        if c.mobile.is_none() {
            c.mobile = Some(c.phone.clone());
        }
        c.region = key_region;
        if let Some(n) = input.name {
            c.name = clean_value("name", &n)?;
        }
        if let Some(e) = input.email {
            let e = clean_value("email", &e)?;
            if let Some(e) = &e {
                let at = e.find('@');
                if !matches!(at, Some(i) if i > 0 && i + 1 < e.len()) || e.contains(' ') {
                    return Err(DomainError::invalid(
                        "email",
                        format!("'{e}' is not an e-mail address"),
                    ));
                }
            }
            c.email = e;
        }
        if let Some(tags) = input.tags {
            let mut set = BTreeSet::new();
            for t in &tags {
                set.insert(normalise_tag(t)?);
            }
            if set.len() > MAX_TAGS {
                return Err(DomainError::invalid(
                    "tags",
                    format!("a contact has at most {MAX_TAGS} tags"),
                ));
            }
            c.tags = set;
        }
        if let Some(vt) = input.valued_tags {
            merge_map(
                "valued_tags",
                "valued tag",
                &mut c.valued_tags,
                vt,
                true,
                MAX_TAGS,
            )?;
        }
        if let Some(f) = input.fields {
            merge_map("fields", "field", &mut c.fields, f, false, MAX_FIELDS)?;
        }
        c.updated_at = now;
        Ok(c)
    }

    /// Creates a new contact from the input (no stored one).
    pub fn create(tenant: &str, input: NewContact, now: Time) -> Result<Self, DomainError> {
        Self::apply(tenant, None, input, now)
    }

    /// What a template may use of this contact.
    pub fn data(&self) -> ContactData {
        ContactData {
            name: self.name.clone(),
            fields: self.fields.clone(),
            valued_tags: self.valued_tags.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "lst_01j…", "tenant": "acme", "name": "VIPs", "created_at": "2026-11-21T09:00:00Z"}))]
pub struct ContactList {
    pub id: String,
    pub tenant: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
}

impl ContactList {
    pub fn create(tenant: &str, name: Option<String>, now: Time) -> Result<Self, DomainError> {
        Ok(ContactList {
            id: new_id("lst"),
            tenant: tenant.to_owned(),
            name: required("name", name)?,
            created_at: now,
        })
    }
}

/// An audience by segmentation (R2.3): every contact having **all** the given tags **and**
/// all the given valued tags (AND semantics). At least one tag or valued tag is required,
/// so a contact without any tag can never be selected this way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"tags": ["vip"], "valued_tags": {"city": "Pune"}}))]
#[serde(deny_unknown_fields)]
pub struct Segment {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub valued_tags: BTreeMap<String, String>,
}

impl Segment {
    /// Normalises the selector like contacts' tags; an empty selector is invalid.
    pub fn normalised(&self) -> Result<Segment, DomainError> {
        let mut tags = Vec::new();
        for t in &self.tags {
            let t = normalise_tag(t)?;
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let mut valued_tags = BTreeMap::new();
        for (k, v) in &self.valued_tags {
            let key = clean_key("valued tag", &format!("valued_tags.{k}"), k)?;
            let value = clean_value(&format!("valued_tags.{k}"), v)?
                .ok_or_else(|| DomainError::invalid(format!("valued_tags.{k}"), "needs a value"))?;
            valued_tags.insert(key, value);
        }
        if tags.is_empty() && valued_tags.is_empty() {
            return Err(DomainError::invalid(
                "tags",
                "give at least one tag or valued tag: a segment selects contacts having all \
                 of them, and contacts without tags cannot be targeted this way",
            ));
        }
        Ok(Segment { tags, valued_tags })
    }

    /// The index keys the selector needs a contact to be listed under.
    pub fn index_keys(&self) -> Vec<String> {
        self.tags
            .iter()
            .map(|t| tag_key(t))
            .chain(self.valued_tags.iter().map(|(k, v)| valued_tag_key(k, v)))
            .collect()
    }

    /// Whether a contact has every tag and valued tag (call on a normalised segment).
    pub fn matches(&self, c: &Contact) -> bool {
        self.tags.iter().all(|t| c.tags.contains(t))
            && self.valued_tags.iter().all(|(k, v)| {
                c.valued_tags
                    .get(k)
                    .is_some_and(|cv| cv.to_lowercase() == v.to_lowercase())
            })
    }
}

/// Where an attach takes the contacts it puts into a campaign's hopper (R2.1, R2.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AttachSource {
    /// Every member of the list.
    List { list_id: String },
    /// Every contact matching the (normalised) segment, found by walking the members of
    /// `key`, the smallest of the segment's index sets.
    Segment { segment: Segment, key: String },
}

/// An attach still to carry on: its source and the page cursor where its walk stands
/// (`None` before the first page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAttach {
    pub source: AttachSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Which request asked for it: the same list attached twice is two attaches, and the
    /// request walking the first must not take the second for its own. (Empty for one
    /// stored before this was kept.)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(phone: &str) -> NewContact {
        NewContact {
            phone: Some(phone.into()),
            ..Default::default()
        }
    }

    fn now() -> Time {
        chrono::Utc::now()
    }

    #[test]
    fn r2_1_contact_phone_is_normalised_on_create() {
        let c = Contact::create(
            "t",
            NewContact {
                name: Some("Asha".into()),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap();
        assert_eq!(c.phone.as_str(), "919812345678");
        assert_eq!(c.region.as_deref(), Some("IN"));
        let err = Contact::create("t", NewContact::default(), now()).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "phone"));
    }

    #[test]
    fn r2_1_phone_only_is_copied_to_mobile() {
        let c = Contact::create("t", input("0091 98123-45678"), now()).unwrap();
        assert_eq!(
            c.mobile.as_ref().map(PhoneNumber::as_str),
            Some("919812345678")
        );
        let m = Contact::create(
            "t",
            NewContact {
                mobile: Some("+44 7400 123456".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(m.phone.as_str(), "447400123456");
        assert_eq!(m.mobile, Some(m.phone.clone()));
        let both = Contact::create(
            "t",
            NewContact {
                mobile: Some("+91 98123 45679".into()),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap();
        assert_eq!(both.phone.as_str(), "919812345678");
        assert_eq!(both.mobile.unwrap().as_str(), "919812345679");
    }

    #[test]
    fn r2_1_invalid_number_is_rejected_naming_the_field() {
        let err = Contact::create("t", input("+91 12345"), now()).unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { ref field, .. } if field == "phone"),
            "{err:?}"
        );
        let err = Contact::create(
            "t",
            NewContact {
                mobile: Some("+91 98123".into()),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { ref field, .. } if field == "mobile"),
            "{err:?}"
        );
        let err = Contact::create(
            "t",
            NewContact {
                email: Some("nope".into()),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "email"));
    }

    #[test]
    fn r2_1_upsert_replaces_what_is_given_and_keeps_the_rest() {
        let first = Contact::create(
            "t",
            NewContact {
                name: Some("Asha".into()),
                email: Some("asha@example.com".into()),
                tags: Some(vec![" VIP ".into(), "gold".into()]),
                valued_tags: Some([("City".to_string(), Some("Pune".to_string()))].into()),
                fields: Some(
                    [
                        ("code".to_string(), Some("A1".to_string())),
                        ("tier".to_string(), Some("2".to_string())),
                    ]
                    .into(),
                ),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap();
        assert_eq!(
            first.tags,
            ["gold".to_string(), "vip".to_string()]
                .into_iter()
                .collect()
        );
        assert_eq!(first.valued_tags["city"], "Pune");
        let second = Contact::apply(
            "t",
            Some(first.clone()),
            NewContact {
                email: Some(String::new()),
                tags: Some(vec!["new".into()]),
                fields: Some(
                    [
                        ("code".to_string(), Some("B2".to_string())),
                        ("tier".to_string(), None),
                    ]
                    .into(),
                ),
                ..input("919812345678")
            },
            now(),
        )
        .unwrap();
        assert_eq!(second.name.as_deref(), Some("Asha"), "absent keeps");
        assert_eq!(second.email, None, "empty clears");
        assert_eq!(second.tags, ["new".to_string()].into_iter().collect());
        assert_eq!(second.valued_tags, first.valued_tags, "absent keeps");
        assert_eq!(
            second.fields,
            [("code".to_string(), "B2".to_string())].into(),
            "merged per key, null removes"
        );
        assert_eq!(second.created_at, first.created_at);
    }

    #[test]
    fn r2_1_contact_data_carries_valued_tags_for_templates() {
        let c = Contact::create(
            "t",
            NewContact {
                name: Some("Asha".into()),
                valued_tags: Some([("city".to_string(), Some("Pune".to_string()))].into()),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap();
        let d = c.data();
        assert_eq!(d.valued_tags["city"], "Pune");
        assert_eq!(d.name.as_deref(), Some("Asha"));
    }

    #[test]
    fn r2_3_segment_needs_a_tag_and_matches_all_of_them() {
        let err = Segment::default().normalised().unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "tags"));
        let seg = Segment {
            tags: vec!["VIP".into()],
            valued_tags: [("City".to_string(), "pune".to_string())].into(),
        }
        .normalised()
        .unwrap();
        assert_eq!(seg.index_keys(), vec!["TAG#vip", "VTAG#city=pune"]);
        let mut c = Contact::create(
            "t",
            NewContact {
                tags: Some(vec!["vip".into(), "x".into()]),
                valued_tags: Some([("city".to_string(), Some("Pune".to_string()))].into()),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap();
        assert!(seg.matches(&c));
        assert_eq!(
            index_keys(&c).into_iter().collect::<Vec<_>>(),
            vec!["TAG#vip", "TAG#x", "VTAG#city=pune"]
        );
        c.tags.remove("vip");
        assert!(!seg.matches(&c), "AND: every tag is needed");
    }

    #[test]
    fn r2_1_tags_reject_separators() {
        let err = Contact::create(
            "t",
            NewContact {
                valued_tags: Some([("a=b".to_string(), Some("c".to_string()))].into()),
                ..input("+91 98123 45678")
            },
            now(),
        )
        .unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { ref field, .. } if field == "valued_tags.a=b")
        );
    }
}
