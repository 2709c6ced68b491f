//! Block lists and the tenant-wide opt-out list (R4.3).
//!
//! A block list is a named set of phone numbers. A campaign attaches up to
//! [`MAX_BLOCK_LISTS_PER_CAMPAIGN`] of them; before each send the sender looks the number
//! up in every attached list and records a hit as BLOCK_LIST. The opt-out list is one per
//! tenant and is always honoured, whatever the campaign attaches: a contact lands on it
//! by replying STOP (`keyword`) or through the API (`api`).
//!
//! Numbers are normalised with [`PhoneNumber::parse`] only, never checked against
//! libphonenumber: a short code or a number libphonenumber deems invalid for its country
//! must still be blockable, since the hopper keeps such numbers (R4.4).

use super::account::required;
use super::phone::PhoneNumber;
use super::{new_id, DomainError, Time};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest block list name, as for campaigns.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description of a block list.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Most block lists one campaign attaches.
pub const MAX_BLOCK_LISTS_PER_CAMPAIGN: usize = 10;
/// Most numbers one request adds to a block list.
pub const MAX_NUMBERS_PER_REQUEST: usize = 1000;
/// Longest note on an opt-out.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest id accepted where a block list is named (ids become part of keys).
const MAX_ID_CHARS: usize = 64;

/// A named set of numbers never sent to by the campaigns that attach it (R4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f", "tenant": "acme",
    "name": "Do not contact", "description": "Complaints and legal requests",
    "created_at": "2026-11-21T09:00:00Z", "version": 1}))]
pub struct BlockList {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    /// Optimistic-concurrency version; every stored change bumps it.
    #[serde(default)]
    pub version: u64,
    /// Set while a delete removes its numbers: the list is gone for every reader.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schema(ignore)]
    pub deleting: bool,
}

/// `POST /block-lists`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Do not contact", "description": "Complaints and legal requests"}))]
pub struct NewBlockList {
    /// Required, at most 200 characters.
    #[schema(value_type = String, required = true, min_length = 1)]
    pub name: Option<String>,
    /// At most 1000 characters.
    pub description: Option<String>,
}

fn optional_text(
    field: &str,
    v: Option<String>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match v {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) if s.trim().chars().count() > max => Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(s) => Ok(Some(s.trim().to_owned())),
    }
}

impl BlockList {
    pub fn create(tenant: &str, input: NewBlockList, now: Time) -> Result<Self, DomainError> {
        let name = required("name", input.name)?;
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(DomainError::invalid(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        Ok(BlockList {
            id: new_id("bl"),
            tenant: tenant.to_owned(),
            name,
            description: optional_text("description", input.description, MAX_DESCRIPTION_CHARS)?,
            created_at: now,
            version: 0,
            deleting: false,
        })
    }
}

/// A number on a block list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"phone": "919812345678", "added_at": "2026-11-21T09:00:00Z"}))]
pub struct BlockedNumber {
    pub phone: PhoneNumber,
    #[schema(value_type = String, format = DateTime)]
    pub added_at: Time,
}

/// Normalises a number to block or look up. Anything [`PhoneNumber::parse`] accepts is
/// fine, short numbers included; the error names `field` (`phones[3]`, `phone`).
pub fn parse_number(input: &str, field: &str) -> Result<PhoneNumber, DomainError> {
    PhoneNumber::parse(input).map_err(|e| match e {
        DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
        other => other,
    })
}

/// Checks a block list id named by a client (`field` names it): ids become part of keys,
/// so they are kept to the alphabet ids are made of.
pub fn check_id(field: &str, id: &str) -> Result<(), DomainError> {
    if super::ids::safe(id, MAX_ID_CHARS) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("'{id}' is not a block list id"),
        ))
    }
}

/// The block lists a campaign attaches (`block_lists`): at most
/// [`MAX_BLOCK_LISTS_PER_CAMPAIGN`], each a well-formed id, none twice. Whether each one
/// exists is for the use case to check.
pub fn check_attached(lists: Vec<String>) -> Result<Vec<String>, DomainError> {
    if lists.len() > MAX_BLOCK_LISTS_PER_CAMPAIGN {
        return Err(DomainError::invalid(
            "block_lists",
            format!(
                "at most {MAX_BLOCK_LISTS_PER_CAMPAIGN} block lists per campaign ({} given)",
                lists.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(lists.len());
    for (i, l) in lists.into_iter().enumerate() {
        let field = format!("block_lists[{i}]");
        let l = l.trim().to_owned();
        check_id(&field, &l)?;
        if out.contains(&l) {
            return Err(DomainError::invalid(
                field,
                format!("block list '{l}' is attached twice"),
            ));
        }
        out.push(l);
    }
    Ok(out)
}

/// How a contact came onto the opt-out list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OptOutSource {
    /// An operator (or a system) opted it out through the API.
    Api,
    /// The contact replied with an opt-out keyword (STOP).
    Keyword,
    /// The provider refused a send because the contact opted out with it (Twilio 21610:
    /// the contact replied STOP to the number).
    Provider,
}

/// A contact on the tenant's opt-out list: no campaign of the tenant sends to it (R4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"phone": "919812345678", "source": "api", "at": "2026-11-21T09:00:00Z", "note": "asked by phone"}))]
pub struct OptOut {
    pub phone: PhoneNumber,
    pub source: OptOutSource,
    /// When it was opted out.
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
    pub note: Option<String>,
}

/// `POST /opt-outs`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phone": "+91 98123 45678", "note": "asked by phone"}))]
pub struct NewOptOut {
    /// Any number that parses to digits (short numbers too).
    #[schema(value_type = String, required = true, min_length = 1)]
    pub phone: Option<String>,
    /// At most 500 characters.
    pub note: Option<String>,
}

impl OptOut {
    /// An opt-out asked for through the API.
    pub fn via_api(input: NewOptOut, now: Time) -> Result<Self, DomainError> {
        let raw = required("phone", input.phone)?;
        Ok(OptOut {
            phone: parse_number(&raw, "phone")?,
            source: OptOutSource::Api,
            at: now,
            note: optional_text("note", input.note, MAX_NOTE_CHARS)?,
        })
    }

    /// The contact replied with an opt-out keyword (`keyword` is what it sent).
    pub fn by_keyword(phone: PhoneNumber, keyword: &str, now: Time) -> Self {
        let note: String = keyword.trim().chars().take(MAX_NOTE_CHARS).collect();
        OptOut {
            phone,
            source: OptOutSource::Keyword,
            at: now,
            note: (!note.is_empty()).then_some(note),
        }
    }
}

impl OptOut {
    /// The provider refused a send as opted out; `detail` is its reason.
    pub fn by_provider(phone: PhoneNumber, detail: &str, now: Time) -> Self {
        let note: String = detail.trim().chars().take(MAX_NOTE_CHARS).collect();
        OptOut {
            phone,
            source: OptOutSource::Provider,
            at: now,
            note: (!note.is_empty()).then_some(note),
        }
    }
}

/// A contact's choice about the tenant's marketing messages, as Meta last reported it: a
/// send refused with 131050 ("the user stopped marketing messages from this business"),
/// or a `user_preferences` webhook (stop, resume). While `stopped`, no MARKETING template
/// of the tenant goes to the contact; utility and authentication templates still do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketingPreference {
    pub phone: PhoneNumber,
    pub stopped: bool,
    /// When the contact chose (Meta's time); a report older than the stored one changes
    /// nothing, so webhooks arriving out of order leave the latest choice.
    pub at: Time,
    /// What reported it: `send_error` (131050) or `user_preferences`.
    pub source: String,
    /// Meta's words, when it gave some ("User requested to stop marketing messages").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default)]
    pub version: u64,
}

impl MarketingPreference {
    /// Meta refused a send to the contact with 131050 at `at`.
    pub fn stopped_by_refusal(phone: PhoneNumber, at: Time, detail: Option<String>) -> Self {
        MarketingPreference {
            phone,
            stopped: true,
            at,
            source: "send_error".into(),
            detail,
            version: 0,
        }
    }

    /// The contact's choice in Meta's `user_preferences` webhook.
    pub fn from_user_preferences(
        phone: PhoneNumber,
        stopped: bool,
        at: Time,
        detail: Option<String>,
    ) -> Self {
        MarketingPreference {
            phone,
            stopped,
            at,
            source: "user_preferences".into(),
            detail,
            version: 0,
        }
    }

    /// Whether this report replaces `stored`: it is newer; at the same instant a stop
    /// wins (the safe direction).
    pub fn replaces(&self, stored: Option<&MarketingPreference>) -> bool {
        stored.is_none_or(|s| self.at > s.at || (self.at == s.at && self.stopped && !s.stopped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn field_of<T: std::fmt::Debug>(r: Result<T, DomainError>) -> String {
        match r {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn r4_3_block_list_needs_a_name_of_bounded_length() {
        let now = Utc::now();
        let ok = BlockList::create(
            "t",
            NewBlockList {
                name: Some(" DNC ".into()),
                description: Some("  ".into()),
            },
            now,
        )
        .unwrap();
        assert_eq!(ok.name, "DNC");
        assert_eq!(ok.description, None);
        assert!(ok.id.starts_with("bl_"));
        assert_eq!(
            field_of(BlockList::create("t", NewBlockList::default(), now)),
            "name"
        );
        let long = NewBlockList {
            name: Some("x".repeat(MAX_NAME_CHARS + 1)),
            description: None,
        };
        assert_eq!(field_of(BlockList::create("t", long, now)), "name");
        let long = NewBlockList {
            name: Some("n".into()),
            description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
        };
        assert_eq!(field_of(BlockList::create("t", long, now)), "description");
    }

    #[test]
    fn r4_3_short_and_country_invalid_numbers_are_blockable() {
        assert_eq!(parse_number("1234", "phones[0]").unwrap().as_str(), "1234");
        // Not a valid Indian number for libphonenumber, still blockable.
        assert_eq!(
            parse_number("+91 98123 4567", "phone").unwrap().as_str(),
            "91981234567"
        );
        assert_eq!(field_of(parse_number("+91 98x", "phones[2]")), "phones[2]");
        assert_eq!(field_of(parse_number("", "phone")), "phone");
    }

    #[test]
    fn r4_3_campaign_attaches_at_most_ten_distinct_lists() {
        assert_eq!(
            check_attached(vec![" bl_a ".into(), "bl_b".into()]).unwrap(),
            vec!["bl_a", "bl_b"]
        );
        assert_eq!(
            field_of(check_attached(vec!["bl_a".into(), "bl_a".into()])),
            "block_lists[1]"
        );
        assert_eq!(
            field_of(check_attached(vec!["bl#x".into()])),
            "block_lists[0]"
        );
        let many = (0..=MAX_BLOCK_LISTS_PER_CAMPAIGN)
            .map(|i| format!("bl_{i}"))
            .collect();
        assert_eq!(field_of(check_attached(many)), "block_lists");
    }

    #[test]
    fn the_latest_marketing_choice_stands_and_a_stop_wins_a_tie() {
        let at = Utc::now();
        let pref = |stopped, secs| MarketingPreference {
            phone: PhoneNumber::parse("919812345678").unwrap(),
            stopped,
            at: at + chrono::Duration::seconds(secs),
            source: "user_preferences".into(),
            detail: None,
            version: 0,
        };
        assert!(pref(true, 0).replaces(None));
        assert!(pref(false, 1).replaces(Some(&pref(true, 0))));
        assert!(!pref(true, 0).replaces(Some(&pref(false, 1))));
        assert!(pref(true, 0).replaces(Some(&pref(false, 0))));
        assert!(!pref(false, 0).replaces(Some(&pref(true, 0))));
    }

    #[test]
    fn r4_3_opt_out_via_api_validates_phone_and_note() {
        let now = Utc::now();
        let o = OptOut::via_api(
            NewOptOut {
                phone: Some("+91 98123 45678".into()),
                note: Some("called us".into()),
            },
            now,
        )
        .unwrap();
        assert_eq!(o.phone.as_str(), "919812345678");
        assert_eq!(o.source, OptOutSource::Api);
        assert_eq!(
            field_of(OptOut::via_api(NewOptOut::default(), now)),
            "phone"
        );
        let long = NewOptOut {
            phone: Some("12345".into()),
            note: Some("x".repeat(MAX_NOTE_CHARS + 1)),
        };
        assert_eq!(field_of(OptOut::via_api(long, now)), "note");
        let k = OptOut::by_keyword(PhoneNumber::parse("919812345678").unwrap(), "STOP", now);
        assert_eq!(k.source, OptOutSource::Keyword);
        assert_eq!(k.note.as_deref(), Some("STOP"));
        assert_eq!(
            serde_json::to_value(&k).unwrap()["source"],
            serde_json::json!("keyword")
        );
    }
}
