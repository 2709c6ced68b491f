//! Meta business portfolios (issue 18): since 7 October 2025 Meta's messaging limit (the
//! unique users a business may reach outside a customer-service window in a moving 24
//! hours: 250, 2,000, 10,000, 100,000 or unlimited) belongs to the business portfolio and
//! is shared by all its numbers. Accounts name their portfolio; the dispatcher budgets
//! each portfolio once across its accounts and campaigns.

use super::{DomainError, Time};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A portfolio's messaging limit as the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "1204567890123456", "messaging_limit": 2000, "tier": "TIER_2K",
    "source": "meta", "updated_at": "2026-12-01T09:00:00Z"}))]
pub struct Portfolio {
    /// Meta's business portfolio id.
    pub id: String,
    /// Unique contacts per moving 24 hours, shared by the portfolio's numbers; none is
    /// unlimited.
    pub messaging_limit: Option<u32>,
    /// Meta's name for the tier (`TIER_2K`), when it came from Meta.
    pub tier: Option<String>,
    /// Where the limit came from: `meta` (read during a template sync) or `manual`.
    pub source: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
    #[serde(default)]
    #[schema(ignore)]
    pub version: u64,
}

/// `PUT /portfolios/{id}`: the limit set by hand (the next template sync of one of its
/// accounts replaces it with Meta's).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"messaging_limit": 10000}))]
pub struct PortfolioLimit {
    /// At least 1; `null` for unlimited. Required: leaving it out is not "unlimited".
    #[serde(default, deserialize_with = "super::tenant::present")]
    #[schema(value_type = Option<u32>, required = true, minimum = 1, maximum = 1_000_000_000)]
    pub messaging_limit: Option<Option<u32>>,
}

/// The largest limit that may be set by hand (Meta's largest finite tier is 100,000).
const MAX_LIMIT: u32 = 1_000_000_000;

/// A portfolio id is a Meta object id: digits only.
pub fn validate_portfolio_id(p: &str) -> Result<(), DomainError> {
    if (5..=32).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "portfolio_id",
            "must be Meta's business portfolio id (digits)",
        ))
    }
}

/// The limit a Meta tier name means: `Some(None)` for unlimited, `None` for a name this
/// engine does not know (kept as it was).
pub fn limit_of_tier(tier: &str) -> Option<Option<u32>> {
    Some(match tier.trim().to_ascii_uppercase().as_str() {
        "TIER_50" => Some(50),
        "TIER_250" => Some(250),
        "TIER_1K" => Some(1_000),
        "TIER_2K" => Some(2_000),
        "TIER_10K" => Some(10_000),
        "TIER_100K" => Some(100_000),
        "TIER_UNLIMITED" | "UNLIMITED" => None,
        _ => return None,
    })
}

impl Portfolio {
    /// A limit set by hand.
    pub fn manual(id: &str, input: PortfolioLimit, now: Time) -> Result<Self, DomainError> {
        validate_portfolio_id(id)?;
        let limit = input.messaging_limit.ok_or_else(|| {
            DomainError::invalid(
                "messaging_limit",
                "is required: a number, or null for no limit",
            )
        })?;
        if limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
            return Err(DomainError::invalid(
                "messaging_limit",
                "must be 1 to 1,000,000,000 contacts per 24 hours (null for no limit)",
            ));
        }
        Ok(Portfolio {
            id: id.to_owned(),
            messaging_limit: limit,
            tier: None,
            source: "manual".into(),
            updated_at: now,
            version: 0,
        })
    }

    /// The limit Meta reports as `tier`; `None` for a tier name this engine does not know.
    pub fn from_meta(id: &str, tier: &str, now: Time) -> Option<Self> {
        Some(Portfolio {
            id: id.to_owned(),
            messaging_limit: limit_of_tier(tier)?,
            tier: Some(tier.trim().to_ascii_uppercase()),
            source: "meta".into(),
            updated_at: now,
            version: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metas_tiers_are_limits_and_unknown_names_change_nothing() {
        assert_eq!(limit_of_tier("TIER_2K"), Some(Some(2_000)));
        assert_eq!(limit_of_tier("tier_250"), Some(Some(250)));
        assert_eq!(limit_of_tier("TIER_UNLIMITED"), Some(None));
        assert_eq!(limit_of_tier("TIER_5K"), None);
        let now = chrono::Utc::now();
        assert!(Portfolio::from_meta("1204567890", "TIER_5K", now).is_none());
        let zero = PortfolioLimit {
            messaging_limit: Some(Some(0)),
        };
        assert!(Portfolio::manual("1204567890", zero, now).is_err());
        let unlimited = PortfolioLimit {
            messaging_limit: Some(None),
        };
        assert!(Portfolio::manual("12ab", unlimited.clone(), now).is_err());
        assert_eq!(
            Portfolio::manual("1204567890", unlimited, now)
                .unwrap()
                .messaging_limit,
            None
        );
        assert!(Portfolio::manual("1204567890", PortfolioLimit::default(), now).is_err());
    }
}
