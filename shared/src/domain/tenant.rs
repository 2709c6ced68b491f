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

/// A tenant's settings. A tenant without a stored item has the defaults: campaigns
/// enabled, times shown in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "acme", "campaigns_enabled": true, "timezone": "Asia/Kolkata", "updated_at": "2026-11-21T09:00:00Z", "version": 3}))]
pub struct Tenant {
    pub id: String,
    /// When off, every `/campaigns` endpoint answers 403 (R1.8).
    #[serde(default = "yes")]
    pub campaigns_enabled: bool,
    /// IANA time zone in which the tenant's times are shown (R1.2).
    #[serde(default = "utc")]
    pub timezone: String,
    pub updated_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version; 0 while nothing is stored.
    #[serde(default)]
    pub version: u64,
}

/// `PUT /tenant`: the fields given replace the stored ones; fields left out keep theirs.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"campaigns_enabled": false, "timezone": "Europe/Madrid"}))]
pub struct TenantSettings {
    pub campaigns_enabled: Option<bool>,
    /// IANA time zone, e.g. `Asia/Kolkata`; `null` resets it to UTC.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
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
            updated_at: None,
            version: 0,
        }
    }

    /// Applies `PUT /tenant`; nothing changes when a field is invalid.
    pub fn apply(&mut self, s: TenantSettings, now: Time) -> Result<(), DomainError> {
        let timezone = match s.timezone {
            None => self.timezone.clone(),
            Some(None) => utc(),
            Some(Some(tz)) => parse_timezone("timezone", &tz)?.name().to_owned(),
        };
        if let Some(on) = s.campaigns_enabled {
            self.campaigns_enabled = on;
        }
        self.timezone = timezone;
        self.updated_at = Some(now);
        Ok(())
    }
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
                    campaigns_enabled: Some(false),
                    timezone: Some(Some("Mars/Olympus".into())),
                },
                now,
            )
            .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "timezone"));
        assert!(t.campaigns_enabled, "nothing changes on a bad request");
        t.apply(
            TenantSettings {
                campaigns_enabled: Some(false),
                timezone: Some(Some("Asia/Kolkata".into())),
            },
            now,
        )
        .unwrap();
        assert_eq!(
            (t.campaigns_enabled, t.timezone.as_str()),
            (false, "Asia/Kolkata")
        );
        let s: TenantSettings = serde_json::from_str(r#"{"timezone": null}"#).unwrap();
        t.apply(s, now).unwrap();
        assert_eq!((t.campaigns_enabled, t.timezone.as_str()), (false, "UTC"));
    }
}
