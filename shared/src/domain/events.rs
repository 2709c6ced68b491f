//! Domain events published on the event bus (R8.2), so bot flows and agent queues can
//! subscribe instead of polling. `detail_type` is the EventBridge detail-type.

use super::campaign::CampaignStatus;
use super::Time;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DomainEvent {
    CampaignStateChanged(CampaignStateChanged),
    ReplyReceived(ReplyReceived),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignStateChanged {
    pub tenant: String,
    pub campaign_id: String,
    pub from: CampaignStatus,
    pub to: CampaignStatus,
    pub reason: Option<String>,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyReceived {
    pub tenant: String,
    pub campaign_id: String,
    pub phone: String,
    pub text: Option<String>,
    pub button: Option<String>,
    pub at: Time,
}

impl DomainEvent {
    pub fn detail_type(&self) -> &'static str {
        match self {
            DomainEvent::CampaignStateChanged(_) => "CampaignStateChanged",
            DomainEvent::ReplyReceived(_) => "ReplyReceived",
        }
    }
}
