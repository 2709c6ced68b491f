//! One-time launch schedules on EventBridge Scheduler.

use super::backend;
use crate::domain::Time;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use aws_sdk_scheduler::Client;
use chrono::{DurationRound, TimeDelta};

/// A `Scheduler` that creates one-time `at()` schedules in a schedule group, each invoking
/// `target_arn` (the launcher) with the payload as input, deleted after they fire.
pub struct EventBridgeScheduler {
    client: Client,
    group: String,
    target_arn: String,
    role_arn: String,
}

/// `at(YYYY-MM-DDTHH:MM:SS)` in UTC. Scheduler has whole-second precision; a fractional
/// time rounds up so the schedule never fires before `at`.
pub fn at_expression(at: Time) -> String {
    let whole = at.duration_trunc(TimeDelta::seconds(1)).unwrap_or(at);
    let at = if whole < at {
        whole + TimeDelta::seconds(1)
    } else {
        whole
    };
    format!("at({})", at.format("%Y-%m-%dT%H:%M:%S"))
}

impl EventBridgeScheduler {
    pub fn new(
        client: Client,
        group: impl Into<String>,
        target_arn: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        EventBridgeScheduler {
            client,
            group: group.into(),
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
        }
    }

    fn target(&self, payload: &str) -> PortResult<Target> {
        Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(payload)
            .build()
            .map_err(|e| backend("schedule target", e))
    }

    fn window() -> PortResult<FlexibleTimeWindow> {
        FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| backend("flexible time window", e))
    }

    /// The stored schedule as (expression, target arn, input), or `None` if absent.
    pub async fn get(&self, name: &str) -> PortResult<Option<(String, String, String)>> {
        match self
            .client
            .get_schedule()
            .group_name(&self.group)
            .name(name)
            .send()
            .await
        {
            Ok(out) => {
                let expr = out.schedule_expression().unwrap_or_default().to_owned();
                let (arn, input) = out
                    .target()
                    .map(|t| (t.arn().to_owned(), t.input().unwrap_or_default().to_owned()))
                    .unwrap_or_default();
                Ok(Some((expr, arn, input)))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend("GetSchedule", e)),
        }
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn put(&self, s: OneTimeSchedule) -> PortResult<()> {
        let expr = at_expression(s.at);
        let created = self
            .client
            .create_schedule()
            .name(&s.name)
            .group_name(&self.group)
            .schedule_expression(&expr)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(Self::window()?)
            .target(self.target(&s.payload)?)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conflict_exception()) =>
            {
                self.client
                    .update_schedule()
                    .name(&s.name)
                    .group_name(&self.group)
                    .schedule_expression(&expr)
                    .schedule_expression_timezone("UTC")
                    .flexible_time_window(Self::window()?)
                    .target(self.target(&s.payload)?)
                    .action_after_completion(ActionAfterCompletion::Delete)
                    .send()
                    .await
                    .map_err(|e| backend("UpdateSchedule", e))?;
                Ok(())
            }
            Err(e) => Err(backend("CreateSchedule", e)),
        }
    }

    async fn delete(&self, name: &str) -> PortResult<()> {
        match self
            .client
            .delete_schedule()
            .group_name(&self.group)
            .name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("DeleteSchedule", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn at_expression_is_utc_and_rounds_up() {
        let t = chrono::Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(at_expression(t), "at(2030-01-02T03:04:05)");
        let frac = t + TimeDelta::milliseconds(1);
        assert_eq!(at_expression(frac), "at(2030-01-02T03:04:06)");
    }
}
