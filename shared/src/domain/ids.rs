//! Identifiers, parsed once at the edge (an HTTP path or header, an event) and typed from
//! there on, so a tenant can't be passed where a campaign is expected and every id that
//! reaches a key has the safe alphabet. Each derefs to `&str` for the storage layer.

use super::DomainError;
use serde::{Deserialize, Serialize};

/// Whether `s` has an id's alphabet: 1 to `max` ASCII letters, digits, `_` or `-`. Ids
/// become part of keys, so every id a client names is held to it.
pub fn safe(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $max:literal, $bad:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id in `s`, or the error an operator sees for it.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                Self::try_from(s.to_owned())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, DomainError> {
                if safe(&s, $max) {
                    Ok($name(s))
                } else {
                    Err($bad(&s))
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type! {
    /// The tenant a request acts for: from the API Gateway authorizer's JWT claim in AWS,
    /// from `x-tenant-id` locally. Part of every key, so kept to a safe alphabet.
    TenantId, 64, |_: &str| DomainError::invalid("tenant", "must be 1-64 letters, digits, '-' or '_'")
}

id_type! {
    /// A campaign (`cmp_…`). An id that cannot exist is simply not found.
    CampaignId, 128, |id: &str| DomainError::not_found("campaign", id)
}

id_type! {
    /// A provider account (`acc_…`). An id that cannot exist is simply not found.
    AccountId, 128, |id: &str| DomainError::not_found("account", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_to_the_safe_alphabet() {
        assert_eq!(TenantId::parse("acme-2_x").unwrap().as_str(), "acme-2_x");
        for bad in ["", "a b", "a#b", "ä", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        let e = CampaignId::parse("../x").unwrap_err();
        assert!(matches!(e, DomainError::NotFound { .. }), "{e}");
        assert!(CampaignId::parse("cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8").is_ok());
        let json: Result<AccountId, _> = serde_json::from_str("\"acc 1\"");
        assert!(json.is_err());
        let id: AccountId = serde_json::from_str("\"acc_1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"acc_1\"");
        assert_eq!(&*id, "acc_1");
    }
}
