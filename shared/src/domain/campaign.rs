//! Campaigns and their lifecycle (R1.1-R1.3).

use super::account::required;
use super::template::VariableSource;
use super::{new_id, DomainError, Time};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignStatus {
    Draft,
    Ready,
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Whatsapp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
}

/// Default sending rate in messages per second (R4.8).
pub const DEFAULT_RATE: u32 = 20;
/// Highest rate a campaign may ask for: Meta's top throughput tier.
pub const MAX_RATE: u32 = 1000;
/// Default number of hopper shards: enough that a campaign at 1,000 messages/s stays far
/// below one DynamoDB partition's write limit.
pub const DEFAULT_HOPPER_SHARDS: u16 = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub channel: Channel,
    pub account_id: Option<String>,
    pub template: Option<TemplateRef>,
    /// Source of each placeholder: index 0 fills `{{1}}` (R3.3).
    pub variables: Vec<VariableSource>,
    pub notes: Option<String>,
    /// Messages per second.
    pub rate: u32,
    pub response_timeout_days: u32,
    pub start_at: Option<Time>,
    pub status: CampaignStatus,
    /// Why the campaign paused, when the engine paused it itself.
    pub pause_reason: Option<String>,
    pub hopper_shards: u16,
    pub created_at: Time,
    pub updated_at: Time,
    pub started_at: Option<Time>,
    pub completed_at: Option<Time>,
    /// Optimistic-concurrency version; every stored change bumps it.
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewCampaign {
    pub name: Option<String>,
    pub channel: Option<Channel>,
    pub account_id: Option<String>,
    pub template: Option<TemplateRef>,
    #[serde(default)]
    pub variables: Vec<VariableSource>,
    pub notes: Option<String>,
    pub rate: Option<u32>,
    pub response_timeout_days: Option<u32>,
    pub start_at: Option<Time>,
}

/// What launching did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launched {
    /// Waits for its start date.
    Scheduled(Time),
    /// Sends from the next tick on.
    Running,
}

impl Campaign {
    pub fn create(tenant: &str, input: NewCampaign, now: Time) -> Result<Self, DomainError> {
        let name = required("name", input.name)?;
        if name.chars().count() > 200 {
            return Err(DomainError::invalid(
                "name",
                "must be at most 200 characters",
            ));
        }
        let rate = input.rate.unwrap_or(DEFAULT_RATE);
        if !(1..=MAX_RATE).contains(&rate) {
            return Err(DomainError::invalid(
                "rate",
                format!("must be between 1 and {MAX_RATE} messages/s"),
            ));
        }
        let response_timeout_days = input.response_timeout_days.unwrap_or(1);
        if !(1..=30).contains(&response_timeout_days) {
            return Err(DomainError::invalid(
                "response_timeout_days",
                "must be between 1 and 30 days",
            ));
        }
        if let Some(t) = &input.template {
            if t.name.trim().is_empty() {
                return Err(DomainError::invalid("template.name", "is required"));
            }
            if t.language.trim().is_empty() {
                return Err(DomainError::invalid("template.language", "is required"));
            }
        }
        if input
            .account_id
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            return Err(DomainError::invalid("account_id", "must not be empty"));
        }
        let mut c = Campaign {
            id: new_id("cmp"),
            tenant: tenant.to_owned(),
            name,
            channel: input.channel.unwrap_or_default(),
            account_id: input.account_id,
            template: input.template,
            variables: input.variables,
            notes: input.notes,
            rate,
            response_timeout_days,
            start_at: input.start_at,
            status: CampaignStatus::Draft,
            pause_reason: None,
            hopper_shards: DEFAULT_HOPPER_SHARDS,
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            version: 0,
        };
        if c.missing_fields().is_empty() {
            c.status = CampaignStatus::Ready;
        }
        Ok(c)
    }

    /// Fields that keep the campaign in DRAFT (R1.3).
    pub fn missing_fields(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.account_id.is_none() {
            m.push("account_id");
        }
        if self.template.is_none() {
            m.push("template");
        }
        m
    }

    pub fn response_timeout(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.response_timeout_days))
    }

    fn illegal(&self, action: &str) -> DomainError {
        DomainError::Conflict(format!(
            "cannot {action} campaign {} while it is {}",
            self.id, self.status
        ))
    }

    /// Launch now, or wait for the start date when it lies in the future.
    pub fn launch(&mut self, now: Time) -> Result<Launched, DomainError> {
        match self.status {
            CampaignStatus::Ready => {}
            CampaignStatus::Draft => {
                return Err(DomainError::Conflict(format!(
                    "cannot launch campaign {} while it is DRAFT: missing {}",
                    self.id,
                    self.missing_fields().join(", ")
                )))
            }
            _ => return Err(self.illegal("launch")),
        }
        self.updated_at = now;
        match self.start_at {
            Some(at) if at > now => {
                self.status = CampaignStatus::Scheduled;
                Ok(Launched::Scheduled(at))
            }
            _ => {
                self.status = CampaignStatus::Running;
                self.started_at = Some(now);
                Ok(Launched::Running)
            }
        }
    }

    /// The start date arrived (the one-time schedule fired, or the tick noticed).
    pub fn start(&mut self, now: Time) -> Result<(), DomainError> {
        if self.status != CampaignStatus::Scheduled {
            return Err(self.illegal("start"));
        }
        self.status = CampaignStatus::Running;
        self.started_at = Some(now);
        self.updated_at = now;
        Ok(())
    }

    /// Stop sending; `reason` is set when the engine pauses by itself.
    pub fn pause(&mut self, reason: Option<String>, now: Time) -> Result<(), DomainError> {
        if self.status != CampaignStatus::Running {
            return Err(self.illegal("pause"));
        }
        self.status = CampaignStatus::Paused;
        self.pause_reason = reason;
        self.updated_at = now;
        Ok(())
    }

    pub fn resume(&mut self, now: Time) -> Result<(), DomainError> {
        if self.status != CampaignStatus::Paused {
            return Err(self.illegal("resume"));
        }
        self.status = CampaignStatus::Running;
        self.pause_reason = None;
        self.updated_at = now;
        Ok(())
    }

    /// Nothing is left to send or to wait for.
    pub fn complete(&mut self, now: Time) -> Result<(), DomainError> {
        if self.status != CampaignStatus::Running {
            return Err(self.illegal("complete"));
        }
        self.status = CampaignStatus::Completed;
        self.completed_at = Some(now);
        self.updated_at = now;
        Ok(())
    }

    /// Whether contacts may still be added to the hopper (R1.4, R2.2).
    pub fn accepts_audience(&self) -> Result<(), DomainError> {
        match self.status {
            CampaignStatus::Completed | CampaignStatus::Cancelled => {
                Err(self.illegal("add contacts to"))
            }
            _ => Ok(()),
        }
    }

    pub fn is_sending(&self) -> bool {
        self.status == CampaignStatus::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn complete_input() -> NewCampaign {
        NewCampaign {
            name: Some("Diwali".into()),
            account_id: Some("acc_1".into()),
            template: Some(TemplateRef {
                name: "offer".into(),
                language: "en".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn r1_3_campaign_missing_template_is_draft_and_cannot_launch() {
        let now = Utc::now();
        let mut c = Campaign::create(
            "t",
            NewCampaign {
                template: None,
                ..complete_input()
            },
            now,
        )
        .unwrap();
        assert_eq!(c.status, CampaignStatus::Draft);
        let err = c.launch(now).unwrap_err();
        assert!(matches!(err, DomainError::Conflict(m) if m.contains("template")));
    }

    #[test]
    fn r1_3_lifecycle_ready_running_paused_running_completed() {
        let now = Utc::now();
        let mut c = Campaign::create("t", complete_input(), now).unwrap();
        assert_eq!(c.status, CampaignStatus::Ready);
        assert_eq!(c.launch(now).unwrap(), Launched::Running);
        c.pause(None, now).unwrap();
        assert_eq!(c.status, CampaignStatus::Paused);
        c.resume(now).unwrap();
        c.complete(now).unwrap();
        assert_eq!(c.status, CampaignStatus::Completed);
    }

    #[test]
    fn r1_3_start_date_in_future_schedules_then_starts() {
        let now = Utc::now();
        let at = now + Duration::hours(2);
        let mut c = Campaign::create(
            "t",
            NewCampaign {
                start_at: Some(at),
                ..complete_input()
            },
            now,
        )
        .unwrap();
        assert_eq!(c.launch(now).unwrap(), Launched::Scheduled(at));
        assert!(
            c.pause(None, now).is_err(),
            "a scheduled campaign is not running"
        );
        c.start(at).unwrap();
        assert_eq!(c.status, CampaignStatus::Running);
    }

    #[test]
    fn r1_3_illegal_transitions_are_conflicts_not_no_ops() {
        let now = Utc::now();
        let mut c = Campaign::create("t", complete_input(), now).unwrap();
        assert!(matches!(c.resume(now), Err(DomainError::Conflict(_))));
        assert!(matches!(c.pause(None, now), Err(DomainError::Conflict(_))));
        assert!(matches!(c.complete(now), Err(DomainError::Conflict(_))));
        c.launch(now).unwrap();
        assert!(matches!(c.launch(now), Err(DomainError::Conflict(_))));
        assert!(matches!(c.start(now), Err(DomainError::Conflict(_))));
        c.complete(now).unwrap();
        assert!(matches!(
            c.accepts_audience(),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn r1_2_settings_are_validated_naming_the_field() {
        let now = Utc::now();
        let bad_rate = Campaign::create(
            "t",
            NewCampaign {
                rate: Some(0),
                ..complete_input()
            },
            now,
        );
        assert!(matches!(bad_rate, Err(DomainError::Invalid { field, .. }) if field == "rate"));
        let bad_timeout = Campaign::create(
            "t",
            NewCampaign {
                response_timeout_days: Some(0),
                ..complete_input()
            },
            now,
        );
        assert!(
            matches!(bad_timeout, Err(DomainError::Invalid { field, .. }) if field == "response_timeout_days")
        );
        let no_name = Campaign::create(
            "t",
            NewCampaign {
                name: None,
                ..complete_input()
            },
            now,
        );
        assert!(matches!(no_name, Err(DomainError::Invalid { field, .. }) if field == "name"));
    }
}
