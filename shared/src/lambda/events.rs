//! The events the functions receive that this code writes itself (the formats other
//! services define, SQS's and API Gateway's, come from `aws_lambda_events`). Nothing here
//! imports a use case, so the use case that schedules a launch can name the launcher's
//! event without depending on the handlers.

use crate::domain::ids::{CampaignId, TenantId};
use serde::{Deserialize, Serialize};

/// What the launcher receives from a one-time schedule or the recurring tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LauncherEvent {
    /// Ids outside the id alphabet make the event malformed.
    Launch {
        tenant: TenantId,
        campaign_id: CampaignId,
    },
    Tick,
}
