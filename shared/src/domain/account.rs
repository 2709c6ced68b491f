//! Provider accounts: who sends, through which provider, with which credentials (R7.2).

use super::{new_id, DomainError, Time};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Meta WhatsApp Cloud API: `sender_id` is the phone_number_id.
    Meta,
    /// Kaleyra v2 WhatsApp API: `sender_id` is `<sid>:<from>`, the Kaleyra account SID
    /// and the business WhatsApp number (digits), e.g. `HXIN1234567890IN:919800000000`
    /// (`crate::providers::kaleyra::KaleyraSender`). `token_ref` names the Kaleyra API key.
    Kaleyra,
    /// AWS End User Messaging Social (`SendWhatsAppMessage`, signed with the deployment's
    /// AWS role, no Meta token): `sender_id` is the origination phone number id,
    /// `phone-number-id-<id>`. The role may send from every number of the AWS account,
    /// so `token_ref` names a grant instead of a token: a secret of the tenant listing the
    /// phone number ids it may send from ([`grants_number`]). `waba_id` is Meta's id of
    /// the number's WhatsApp Business Account, as its events name it.
    #[serde(rename = "aws_social")]
    AwsSocial,
    /// Twilio Programmable Messaging, SMS: `sender_id` is `<AccountSid>:<From>`, the
    /// Twilio account SID (`AC` and 32 hex digits) and the sending number in E.164 or a
    /// Messaging Service SID (`MG...`); `token_ref` names the account's auth token, which
    /// also verifies Twilio's signed callbacks.
    Twilio,
    /// AWS End User Messaging SMS (`SendTextMessage`, signed with the deployment's AWS
    /// role): `sender_id` is the origination number in E.164 (`+15550001111`), as its
    /// events name it; `token_ref` names a grant, a secret of the tenant listing the
    /// numbers it may send from ([`grants_number`]).
    #[serde(rename = "aws_sms")]
    AwsSms,
    /// Amazon Connect, voice (`StartOutboundVoiceContact`, signed with the deployment's
    /// AWS role): `sender_id` is the Connect instance id; `caller_ids` the numbers
    /// claimed on it that calls may come from; `token_ref` names a grant, a secret of the
    /// tenant listing the instance ids it may call through ([`grants_number`]).
    Connect,
}

impl Provider {
    /// Whether the account's templates can be read from Meta's template list with its
    /// token (an AWS End User Messaging Social account holds no Meta token; an SMS account
    /// has no templates).
    pub fn lists_meta_templates(self) -> bool {
        matches!(self, Provider::Meta | Provider::Kaleyra)
    }

    /// Whether the provider sends SMS; `Channel::of` names the channel.
    pub fn sends_sms(self) -> bool {
        matches!(self, Provider::Twilio | Provider::AwsSms)
    }

    /// Whether the provider places voice calls.
    pub fn calls(self) -> bool {
        self == Provider::Connect
    }

    /// Whether the provider's refusal of an opted-out number speaks for the tenant: a
    /// Twilio opt-out is the contact's STOP to this very number, which belongs to the
    /// tenant, so the tenant's opt-out list takes the contact. AWS End User Messaging
    /// SMS keeps one opt-out list per AWS account unless each number is given its own,
    /// and numbers of several tenants may share it: its refusal records the entry as opted
    /// out and leaves the tenant's list alone (another tenant's customer's STOP is none of
    /// this tenant's business).
    pub fn opt_out_refusal_is_the_tenants(self) -> bool {
        self == Provider::Twilio
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Meta => "meta",
            Provider::Kaleyra => "kaleyra",
            Provider::AwsSocial => "aws_social",
            Provider::Twilio => "twilio",
            Provider::AwsSms => "aws_sms",
            Provider::Connect => "connect",
        }
    }
}

/// The Twilio account SID and the sender (an E.164 number or a Messaging Service SID) of a
/// Twilio account's `sender_id`, `<AccountSid>:<From>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioSender {
    pub account_sid: String,
    pub from: TwilioFrom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioFrom {
    /// `From`: a number in E.164 (`+` and 8-15 digits).
    Number(String),
    /// `MessagingServiceSid`: Twilio picks the number from the service's pool.
    Service(String),
}

fn twilio_sid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl TwilioSender {
    pub fn parse(s: &str) -> Option<Self> {
        let (sid, from) = s.split_once(':')?;
        if !twilio_sid(sid, "AC") {
            return None;
        }
        let from = if twilio_sid(from, "MG") {
            TwilioFrom::Service(from.to_owned())
        } else {
            let digits = from.strip_prefix('+')?;
            if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            TwilioFrom::Number(from.to_owned())
        };
        Some(TwilioSender {
            account_sid: sid.to_owned(),
            from,
        })
    }
}

/// An aws_sms `sender_id` is the origination number in E.164: `+` and 8 to 15 digits.
pub fn validate_e164_sender_id(s: &str) -> Result<(), DomainError> {
    if super::phone::is_e164(s) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "sender_id",
            "an aws_sms sender_id must be the origination number in E.164, e.g. +15550001111",
        ))
    }
}

/// A Twilio `sender_id` must be `<AccountSid>:<From>` ([`TwilioSender`]).
pub fn validate_twilio_sender_id(s: &str) -> Result<(), DomainError> {
    match TwilioSender::parse(s) {
        Some(_) => Ok(()),
        None => Err(DomainError::invalid(
            "sender_id",
            "a Twilio sender_id must be <AccountSid>:<From>: the account SID (AC + 32 hex digits) and the number in E.164 (+15005550006) or a Messaging Service SID (MG + 32 hex digits)",
        )),
    }
}

/// An AWS End User Messaging Social origination phone number id:
/// `phone-number-id-` and its id (letters and digits).
pub fn validate_aws_social_sender_id(s: &str) -> Result<(), DomainError> {
    let ok = s.strip_prefix("phone-number-id-").is_some_and(|id| {
        (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "sender_id",
            "an aws_social sender_id must be the origination phone number id, phone-number-id-<id>",
        ))
    }
}

/// Whether a grant (the secret an AWS End User Messaging Social account's `token_ref`
/// names) lists `sender_id`: phone number ids separated by commas or white space.
pub fn grants_number(grant: &str, sender_id: &str) -> bool {
    grant
        .split(|c: char| c == ',' || c.is_whitespace())
        .any(|id| !id.is_empty() && id == sender_id)
}

/// An Amazon Connect instance id as the API takes it (`InstanceId`, 1-100 characters):
/// the instance's UUID, letters, digits and dashes.
pub fn validate_connect_sender_id(s: &str) -> Result<(), DomainError> {
    let ok =
        (1..=100).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "sender_id",
            "a connect sender_id must be the Amazon Connect instance id (its UUID)",
        ))
    }
}

/// Concurrent calls a Connect account places unless it says otherwise: Amazon Connect's
/// default quota of concurrent active calls per instance.
pub const DEFAULT_CONCURRENT_CALLS: u32 = 10;
/// Most concurrent calls a Connect account may have (its lines are one item).
pub const MAX_CONCURRENT_CALLS: u32 = 1000;
/// Most caller ids one Connect account lists.
pub const MAX_CALLER_IDS: usize = 100;

/// Meta's default throughput per business number (PROVIDERS.md section 4).
pub const DEFAULT_ACCOUNT_RATE: u32 = 80;
/// An SMS number's rate in message parts per second: a US long code's (Twilio and AWS End
/// User Messaging SMS both default to 1 part/s; toll-free and short codes allow more, set
/// `rate_limit`). On SMS accounts `rate_limit` counts parts, not messages.
pub const DEFAULT_SMS_RATE: u32 = 1;
/// How many calls a second a Connect account's dispatch starts at most: Connect's
/// `StartOutboundVoiceContact` is rate-limited per account (a few a second).
pub const DEFAULT_CONNECT_RATE: u32 = 2;
/// Kaleyra's tested outbound rate (PROVIDERS.md section 5): the default for its accounts.
pub const DEFAULT_KALEYRA_RATE: u32 = 20;

/// A Kaleyra `sender_id` is `<sid>:<from>`: an account SID (letters, digits, `_`, `-`) and
/// the business number (6-15 digits, an optional leading `+`). The Kaleyra adapter checks
/// the same again at send time.
pub fn validate_kaleyra_sender_id(s: &str) -> Result<(), DomainError> {
    let ok = s.split_once(':').is_some_and(|(sid, from)| {
        let from = from.strip_prefix('+').unwrap_or(from);
        !sid.is_empty()
            && sid.len() <= 64
            && sid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && (6..=15).contains(&from.len())
            && from.chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "sender_id",
            "a Kaleyra sender_id must be <sid>:<from> (account SID and business number)",
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "acc_0190a1", "tenant": "acme", "name": "Main", "provider": "meta",
    "sender_id": "106540352242922", "token_ref": "secretsmanager:campaigns/acme/meta-token",
    "rate_limit": 80, "created_at": "2026-03-01T09:00:00Z"
}))]
pub struct Account {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub provider: Provider,
    /// The provider's id of the sending number (Meta: phone_number_id; Kaleyra:
    /// `<sid>:<from>`, see [`Provider::Kaleyra`]).
    pub sender_id: String,
    /// Where the API token lives: `secretsmanager:NAME`, `ssm:NAME` or `env:VAR`.
    /// The token itself is never stored (R7.2).
    pub token_ref: String,
    /// Messages per second the provider allows this sender.
    pub rate_limit: u32,
    /// The WhatsApp messaging tier: unique contacts the account may start conversations
    /// with per rolling 24 hours (Meta: 250, 1,000, 10,000, 100,000); none is unlimited
    /// (R4.8).
    #[serde(default)]
    pub messaging_tier: Option<u32>,
    /// The Meta business portfolio the number belongs to. Since 7 October 2025 Meta counts
    /// the messaging limit per portfolio, shared by all its numbers: with a portfolio the
    /// budget is the portfolio's (`/portfolios/{id}`), not `messaging_tier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio_id: Option<String>,
    /// Opted in to Meta's Marketing Messages API: campaign sends of templates whose
    /// current category is MARKETING go to `/<PHONE_NUMBER_ID>/marketing_messages`
    /// (Meta account only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marketing_messages: bool,
    /// Connect: the numbers claimed on the instance that calls may come from (E.164); a
    /// voice campaign's `caller_id` is one of them. Each belongs to this tenant alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caller_ids: Vec<String>,
    /// Connect: the most calls in progress at once across the account's campaigns (the
    /// instance's concurrent-calls quota), shared fairly by them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Main", "sender_id": "106540352242922",
    "token_ref": "secretsmanager:campaigns/acme/meta-token", "waba_id": "102290129340398"
}))]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    #[schema(value_type = String, required = true, min_length = 1)]
    pub name: Option<String>,
    /// `meta` (default), `kaleyra`, `aws_social` (WhatsApp), `twilio` or `aws_sms` (SMS).
    pub provider: Option<Provider>,
    /// The sending number as the provider names it. Meta: the phone_number_id; Kaleyra:
    /// `<sid>:<from>`; aws_social: the origination phone number id, `phone-number-id-<id>`.
    #[schema(value_type = String, required = true, min_length = 1)]
    pub sender_id: Option<String>,
    /// Where the credential lives: `secretsmanager:campaigns/<tenant>/NAME`,
    /// `ssm:/campaigns/<tenant>/NAME` (or `env:VAR` locally). Meta: the access token;
    /// Kaleyra: the API key; aws_social: the grant, the origination phone number ids the
    /// tenant may send from (comma or white-space separated).
    #[schema(value_type = String, required = true, min_length = 1)]
    pub token_ref: Option<String>,
    pub rate_limit: Option<u32>,
    /// Unique contacts per rolling 24 hours; absent is unlimited.
    #[serde(default)]
    pub messaging_tier: Option<u32>,
    /// Meta's business portfolio id (digits): accounts of one portfolio share its
    /// messaging limit.
    #[serde(default)]
    pub portfolio_id: Option<String>,
    /// Meta's WhatsApp Business Account id: where templates are synchronised from
    /// (R3.4), and how Meta's template webhooks find the account's templates. Required
    /// on a Meta and an aws_social account (Meta's id of the WABA the number is linked
    /// through). Kept with the account's template settings.
    #[serde(default)]
    pub waba_id: Option<String>,
    /// Send MARKETING templates through Meta's Marketing Messages API (the account must be
    /// onboarded to it at Meta). Meta accounts only; default false.
    #[serde(default)]
    pub marketing_messages: Option<bool>,
    /// Connect (required there): the numbers claimed on the instance that calls may come
    /// from, in E.164 (at most 100).
    #[serde(default)]
    pub caller_ids: Option<Vec<String>>,
    /// Connect: the most calls in progress at once across the account's campaigns
    /// (1-1,000, default 10, Connect's default quota per instance).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrent_calls: Option<u32>,
}

/// A WhatsApp Business Account id is a Meta object id: digits only.
pub fn validate_waba_id(w: &str) -> Result<(), DomainError> {
    if (5..=32).contains(&w.len()) && w.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "waba_id",
            "must be the WhatsApp Business Account id (digits)",
        ))
    }
}

/// A credential reference names a secret store and a key, never the secret itself.
pub fn validate_secret_ref(field: &str, r: &str) -> Result<(), DomainError> {
    let ok = ["secretsmanager:", "ssm:", "env:"].iter().any(|p| {
        r.strip_prefix(p)
            .is_some_and(|rest| !rest.trim().is_empty())
    });
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "must reference a secret as secretsmanager:NAME, ssm:NAME or env:VAR, not hold it",
        ))
    }
}

/// Whether a credential reference lies in `tenant`'s namespace: a Secrets Manager secret or
/// an SSM parameter named `campaigns/<tenant>/<name>`, so that no tenant can point its
/// account at another tenant's token or at the deployment's own secrets (the IAM policies
/// grant `campaigns/*/*` only). `env:VAR` is for local runs; the AWS resolver refuses it.
pub fn secret_ref_of_tenant(tenant: &str, r: &str) -> bool {
    let prefix = format!("campaigns/{tenant}/");
    let under = |name: &str| {
        name.strip_prefix(prefix.as_str())
            .is_some_and(|rest| !rest.trim().is_empty() && !rest.split('/').any(|s| s == ".."))
    };
    if let Some(name) = r.strip_prefix("secretsmanager:") {
        under(name)
    } else if let Some(name) = r.strip_prefix("ssm:") {
        under(name.strip_prefix('/').unwrap_or(name))
    } else {
        r.starts_with("env:")
    }
}

impl Account {
    pub fn create(tenant: &str, input: NewAccount, now: Time) -> Result<Self, DomainError> {
        let (caller_ids, max_concurrent_calls) =
            voice_lines(input.provider.unwrap_or(Provider::Meta), &input)?;
        let name = required("name", input.name)?;
        let sender_id = required("sender_id", input.sender_id)?;
        let token_ref = required("token_ref", input.token_ref)?;
        validate_secret_ref("token_ref", &token_ref)?;
        if !secret_ref_of_tenant(tenant, &token_ref) {
            return Err(DomainError::invalid(
                "token_ref",
                format!("must name a secret of this tenant: secretsmanager:campaigns/{tenant}/NAME or ssm:/campaigns/{tenant}/NAME"),
            ));
        }
        if let Some(w) = &input.waba_id {
            validate_waba_id(w.trim())?;
        }
        let provider = input.provider.unwrap_or(Provider::Meta);
        // Meta's template webhooks name the WABA; they are matched to templates by it.
        if matches!(provider, Provider::Meta | Provider::AwsSocial)
            && input.waba_id.as_deref().is_none_or(|w| w.trim().is_empty())
        {
            return Err(DomainError::invalid(
                "waba_id",
                "is required on a Meta or aws_social account: its WhatsApp Business Account id",
            ));
        }
        match provider {
            Provider::Kaleyra => validate_kaleyra_sender_id(&sender_id)?,
            Provider::AwsSocial => validate_aws_social_sender_id(&sender_id)?,
            Provider::Twilio => validate_twilio_sender_id(&sender_id)?,
            Provider::AwsSms => validate_e164_sender_id(&sender_id)?,
            Provider::Connect => validate_connect_sender_id(&sender_id)?,
            Provider::Meta => {}
        }

        if provider.sends_sms() && input.messaging_tier.is_some() {
            return Err(DomainError::invalid(
                "messaging_tier",
                "is WhatsApp's limit of new conversations; an SMS account has none",
            ));
        }
        let rate_limit = input.rate_limit.unwrap_or(match provider {
            // Meta's limit per number holds behind AWS as well.
            Provider::Meta | Provider::AwsSocial => DEFAULT_ACCOUNT_RATE,
            Provider::Kaleyra => DEFAULT_KALEYRA_RATE,
            Provider::Twilio | Provider::AwsSms => DEFAULT_SMS_RATE,
            // Calls are paced by concurrency (`max_concurrent_calls`); this caps how fast
            // the dispatcher starts them.
            Provider::Connect => DEFAULT_CONNECT_RATE,
        });
        if !(1..=1000).contains(&rate_limit) {
            return Err(DomainError::invalid(
                "rate_limit",
                "must be between 1 and 1000 messages/s",
            ));
        }
        if input.messaging_tier == Some(0) {
            return Err(DomainError::invalid(
                "messaging_tier",
                "must be at least 1 contact per 24 hours (leave it out for no limit)",
            ));
        }
        let marketing_messages = input.marketing_messages.unwrap_or(false);
        if marketing_messages && provider != Provider::Meta {
            return Err(DomainError::invalid(
                "marketing_messages",
                "Meta's Marketing Messages API is reached with a Meta account only",
            ));
        }
        let portfolio_id = input.portfolio_id.map(|p| p.trim().to_owned());
        if let Some(p) = &portfolio_id {
            super::portfolio::validate_portfolio_id(p)?;
        }
        Ok(Account {
            caller_ids,
            max_concurrent_calls,
            messaging_tier: input.messaging_tier,
            portfolio_id,
            marketing_messages,
            id: new_id("acc"),
            tenant: tenant.to_owned(),
            name,
            provider,
            sender_id,
            token_ref,
            rate_limit,
            created_at: now,
        })
    }

    /// The messaging limit the account's sends count against: its business portfolio's
    /// once known (read from Meta or set by hand), else its own `messaging_tier`; `None`
    /// is unlimited.
    pub fn messaging_limit(&self, portfolio: Option<&super::portfolio::Portfolio>) -> Option<u32> {
        match portfolio {
            Some(p) => p.messaging_limit,
            None => self.messaging_tier,
        }
    }

    /// What the account owns among the ids provider webhooks name: its sending number
    /// and, on Kaleyra, the account SID its callbacks come from. Each belongs to one
    /// tenant (the first account that claims it).
    pub fn owned_numbers(&self) -> Vec<String> {
        let mut ids = Vec::new();
        if matches!(self.provider, Provider::Kaleyra | Provider::Twilio) {
            if let Some((sid, _)) = self.sender_id.split_once(':') {
                ids.push(sid.trim().to_owned());
            }
        }
        ids.push(self.sender_id.clone());
        // A caller id is the tenant's alone, like a sending number.
        ids.extend(self.caller_ids.iter().cloned());
        ids
    }

    /// A voice campaign's caller id must be one the account claimed on its instance; a
    /// 422 naming `voice.caller_id` otherwise.
    pub fn check_caller_id(&self, caller_id: &str) -> Result<(), DomainError> {
        if self.caller_ids.iter().any(|c| c == caller_id) {
            return Ok(());
        }
        Err(DomainError::invalid(
            "voice.caller_id",
            format!(
                "{caller_id} is not one of account {}'s caller_ids ({})",
                self.id,
                self.caller_ids.join(", ")
            ),
        ))
    }

    /// The most calls the account has in progress at once (Connect accounts).
    pub fn concurrent_calls(&self) -> u32 {
        self.max_concurrent_calls
            .unwrap_or(DEFAULT_CONCURRENT_CALLS)
    }
}

/// A Connect account's caller ids and concurrent calls, checked; none on other providers
/// (a 422 naming the field when given there).
fn voice_lines(
    provider: Provider,
    input: &NewAccount,
) -> Result<(Vec<String>, Option<u32>), DomainError> {
    if !provider.calls() {
        if input.caller_ids.is_some() {
            return Err(DomainError::invalid(
                "caller_ids",
                "belong to a connect account (voice)",
            ));
        }
        if input.max_concurrent_calls.is_some() {
            return Err(DomainError::invalid(
                "max_concurrent_calls",
                "belongs to a connect account (voice)",
            ));
        }
        return Ok((Vec::new(), None));
    }
    if input.messaging_tier.is_some() {
        return Err(DomainError::invalid(
            "messaging_tier",
            "is WhatsApp's limit of new conversations; a connect account has none",
        ));
    }
    let mut ids: Vec<String> = input
        .caller_ids
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.trim().to_owned())
        .collect();
    if ids.is_empty() || ids.len() > MAX_CALLER_IDS {
        return Err(DomainError::invalid(
            "caller_ids",
            format!("list 1 to {MAX_CALLER_IDS} numbers claimed on the Connect instance"),
        ));
    }
    if let Some(bad) = ids.iter().find(|c| !super::phone::is_e164(c)) {
        return Err(DomainError::invalid(
            "caller_ids",
            format!("'{bad}' is not a number in E.164 (+ and 8 to 15 digits)"),
        ));
    }
    ids.sort();
    ids.dedup();
    let calls = input
        .max_concurrent_calls
        .unwrap_or(DEFAULT_CONCURRENT_CALLS);
    // The lines are one item: a thousand calls keep it far below DynamoDB's 400 KB.
    if !(1..=MAX_CONCURRENT_CALLS).contains(&calls) {
        return Err(DomainError::invalid(
            "max_concurrent_calls",
            format!("must be between 1 and {MAX_CONCURRENT_CALLS} calls"),
        ));
    }
    Ok((ids, Some(calls)))
}

/// Which tenant a sending number belongs to. Provider webhooks name the number, never our
/// tenant: the owner is how a message to the number finds its tenant, and why a number is
/// never shared by two tenants. The first account to claim a number owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberOwner {
    pub tenant: String,
    pub account_id: String,
}

impl NumberOwner {
    /// The owner `a` would be, claiming one of its numbers.
    pub fn of(a: &Account) -> Self {
        NumberOwner {
            tenant: a.tenant.clone(),
            account_id: a.id.clone(),
        }
    }

    /// Whether `a` may send from (and hear about) the number: any account of the owning
    /// tenant may.
    pub fn admits(&self, a: &Account) -> bool {
        self.tenant == a.tenant
    }
}

pub(crate) fn required(field: &str, v: Option<String>) -> Result<String, DomainError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(DomainError::invalid(field, "is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(token_ref: &str) -> NewAccount {
        NewAccount {
            name: Some("Main".into()),
            provider: None,
            sender_id: Some("106540352242922".into()),
            token_ref: Some(token_ref.into()),
            waba_id: Some("102290129340398".into()),
            ..Default::default()
        }
    }

    #[test]
    fn r7_2_account_holds_a_reference_not_a_token() {
        let a = Account::create(
            "t1",
            input("secretsmanager:campaigns/t1/meta-token"),
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(a.rate_limit, DEFAULT_ACCOUNT_RATE);
        let err = Account::create("t1", input("EAAG1234secret"), chrono::Utc::now()).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "token_ref"));
    }

    #[test]
    fn r7_1_kaleyra_account_needs_sid_and_number() {
        let kaleyra = |sender: &str| NewAccount {
            provider: Some(Provider::Kaleyra),
            sender_id: Some(sender.into()),
            ..input("env:KALEYRA_KEY")
        };
        let a = Account::create("t1", kaleyra("HXIN17:919800000000"), chrono::Utc::now()).unwrap();
        assert_eq!(a.rate_limit, DEFAULT_KALEYRA_RATE);
        for bad in [
            "919800000000",
            "HXIN17:",
            ":919800000000",
            "HX/17:919800000000",
        ] {
            let err = Account::create("t1", kaleyra(bad), chrono::Utc::now()).unwrap_err();
            assert!(matches!(err, DomainError::Invalid { field, .. } if field == "sender_id"));
        }
    }

    #[test]
    fn an_aws_social_account_names_its_origination_number_and_a_grant() {
        let aws = |sender: &str| NewAccount {
            provider: Some(Provider::AwsSocial),
            sender_id: Some(sender.into()),
            ..input("secretsmanager:campaigns/t1/aws-numbers")
        };
        let a = Account::create(
            "t1",
            aws("phone-number-id-976c72a700aac43eaf573ae050e1"),
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(a.rate_limit, DEFAULT_ACCOUNT_RATE);
        assert_eq!(
            serde_json::to_value(a.provider).unwrap(),
            serde_json::json!("aws_social")
        );
        for bad in ["106540352242922", "phone-number-id-", "phone-number-id-a/b"] {
            let err = Account::create("t1", aws(bad), chrono::Utc::now()).unwrap_err();
            assert!(matches!(err, DomainError::Invalid { field, .. } if field == "sender_id"));
        }
        let no_waba = NewAccount {
            waba_id: None,
            ..aws("phone-number-id-1")
        };
        let err = Account::create("t1", no_waba, chrono::Utc::now()).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "waba_id"));
        assert!(grants_number(
            "phone-number-id-1, phone-number-id-2\n",
            "phone-number-id-2"
        ));
        assert!(!grants_number("phone-number-id-12", "phone-number-id-1"));
        assert!(!grants_number("", "phone-number-id-1"));
    }
}
