//! Messaging providers: adapters of the `MessagingProvider` port and the webhook
//! formats each provider posts back.

pub mod aws_sms;
pub mod aws_social;
pub mod connect;
pub mod kaleyra;
pub mod meta;
pub mod meta_templates;
pub mod twilio;

use crate::domain::account::{secret_ref_of_tenant, Account, Provider};
use crate::domain::outcome::{FailureClass, SendFailure};
use crate::ports::{
    Accepted, MessagingProvider, OutboundCall, OutboundSms, OutboundTemplate, PortError, Secrets,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Connect timeout of the provider APIs' client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request timeout of the provider APIs' client.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client a process talks to providers (and the secrets extension) with: built
/// once by the composition root (`compose`) and cloned (a handle on one pool) into each
/// adapter. The adapters' `new` build their own, for tests.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client with static configuration")
}

/// Sends through the adapter of the account's provider, so one sender serves Meta,
/// Kaleyra, AWS End User Messaging Social, Twilio and AWS End User Messaging SMS accounts
/// alike.
pub struct ByAccountProvider {
    pub meta: Arc<dyn MessagingProvider>,
    pub kaleyra: Arc<dyn MessagingProvider>,
    pub aws_social: Arc<dyn MessagingProvider>,
    pub twilio: Arc<dyn MessagingProvider>,
    pub aws_sms: Arc<dyn MessagingProvider>,
    pub connect: Arc<dyn MessagingProvider>,
}

#[async_trait]
impl MessagingProvider for ByAccountProvider {
    async fn send(
        &self,
        account: &Account,
        msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        match account.provider {
            Provider::Meta => self.meta.send(account, msg).await,
            Provider::Kaleyra => self.kaleyra.send(account, msg).await,
            Provider::AwsSocial => self.aws_social.send(account, msg).await,
            Provider::Twilio => self.twilio.send(account, msg).await,
            Provider::AwsSms => self.aws_sms.send(account, msg).await,
            Provider::Connect => self.connect.send(account, msg).await,
        }
    }

    async fn send_sms(
        &self,
        account: &Account,
        msg: &OutboundSms,
    ) -> Result<Accepted, SendFailure> {
        match account.provider {
            Provider::Meta => self.meta.send_sms(account, msg).await,
            Provider::Kaleyra => self.kaleyra.send_sms(account, msg).await,
            Provider::AwsSocial => self.aws_social.send_sms(account, msg).await,
            Provider::Twilio => self.twilio.send_sms(account, msg).await,
            Provider::AwsSms => self.aws_sms.send_sms(account, msg).await,
            Provider::Connect => self.connect.send_sms(account, msg).await,
        }
    }

    async fn start_call(
        &self,
        account: &Account,
        call: &OutboundCall,
    ) -> Result<Accepted, SendFailure> {
        match account.provider {
            Provider::Connect => self.connect.start_call(account, call).await,
            Provider::Meta => self.meta.start_call(account, call).await,
            Provider::Kaleyra => self.kaleyra.start_call(account, call).await,
            Provider::AwsSocial => self.aws_social.start_call(account, call).await,
            Provider::Twilio => self.twilio.start_call(account, call).await,
            Provider::AwsSms => self.aws_sms.start_call(account, call).await,
        }
    }
}

/// The account's credential, resolved from its reference. A credential that is not there
/// (or may not be read) is an account-level failure: the campaign pauses instead of
/// failing every contact. A store that cannot answer just now is not: the entry goes
/// back in line and the campaign runs on.
pub(crate) async fn credential(
    secrets: &dyn Secrets,
    account: &Account,
    provider: &str,
) -> Result<String, SendFailure> {
    // An account stored before references were confined to their tenant's namespace
    // is not trusted with another tenant's secret.
    if !secret_ref_of_tenant(&account.tenant, &account.token_ref) {
        tracing::warn!(account = %account.id, token_ref = %account.token_ref, provider, "credential reference outside the tenant's namespace; refused");
        return Err(SendFailure {
            class: FailureClass::Campaign,
            code: None,
            reason: format!(
                "credentials unavailable: {} is not a secret of this tenant",
                account.token_ref
            ),
        });
    }
    match secrets.resolve(&account.token_ref).await {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        // The store could not answer just now: nothing sent, try again soon.
        Err(PortError::Backend(e)) => {
            tracing::warn!(account = %account.id, provider, error = %e, "credentials not read; the entry goes back in line");
            Err(SendFailure {
                class: FailureClass::NotAttempted,
                code: None,
                reason: format!("credentials not read just now: {}", account.token_ref),
            })
        }
        _ => {
            tracing::warn!(account = %account.id, token_ref = %account.token_ref, provider, "credentials unavailable");
            Err(SendFailure {
                class: FailureClass::Campaign,
                code: None,
                reason: format!("credentials unavailable: {}", account.token_ref),
            })
        }
    }
}

/// A network-level failure, with the whole error chain and no URL: temporary when no
/// connection was made (nothing sent), else of unknown outcome (the request may have
/// been accepted before the answer was lost).
fn transport_error(provider: &str, e: &reqwest::Error) -> SendFailure {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "error reading the response"
    } else {
        "request error"
    };
    let mut detail = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        src = inner.source();
    }
    let reason = format!("{provider} {kind}: {detail}");
    if e.is_connect() {
        SendFailure::transport(reason)
    } else {
        SendFailure::outcome_unknown(reason)
    }
}

/// What an AWS SDK adapter's request came to (`answered`: the provider's id for the
/// message or call, or the classified failure), logged with the masked recipient: an
/// answer without an id may follow an accepted message, so its outcome is unknown.
pub(crate) fn sdk_outcome(
    provider: &str,
    account: &Account,
    to: &str,
    answered: Result<Option<String>, SendFailure>,
) -> Result<Accepted, SendFailure> {
    let result = match answered {
        Ok(Some(id)) if !id.is_empty() => Ok(Accepted::from(id)),
        Ok(_) => Err(SendFailure::outcome_unknown(format!(
            "{provider} accepted without an id"
        ))),
        Err(f) => Err(f),
    };
    match &result {
        Ok(a) => {
            tracing::debug!(account = %account.id, to, provider, message_id = %a.message_id, "provider accepted")
        }
        Err(f) => tracing::warn!(
            account = %account.id, to, provider, code = ?f.code,
            class = ?f.class, reason = %f.reason, "provider send failed"
        ),
    }
    result
}

/// Sends a provider request and reads its answer with the provider's `interpret`
/// (HTTP status and body -> message id or classified failure), logging the outcome
/// with the masked recipient.
pub(crate) async fn send_request(
    req: reqwest::RequestBuilder,
    provider: &str,
    account: &Account,
    to: &str,
    interpret: fn(u16, &[u8]) -> Result<Accepted, SendFailure>,
) -> Result<Accepted, SendFailure> {
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error(provider, &e.without_url()))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| transport_error(provider, &e.without_url()))?;
    let out = interpret(status, &bytes);
    match &out {
        Ok(a) => {
            tracing::debug!(account = %account.id, to, provider, message_id = %a.message_id, message_status = ?a.message_status, "provider accepted")
        }
        Err(f) => tracing::warn!(
            account = %account.id, to, provider, http_status = status, code = ?f.code,
            class = ?f.class, reason = %f.reason, "provider send failed"
        ),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::NewAccount;
    use crate::ports::{PortResult, Secrets};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl Secrets for Counting {
        async fn resolve(&self, _reference: &str) -> PortResult<String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok("another tenant's token".into())
        }
    }

    #[tokio::test]
    async fn a_stored_reference_outside_the_tenants_namespace_is_never_resolved() {
        let mut a = Account::create(
            "acme",
            NewAccount {
                name: Some("Main".into()),
                sender_id: Some("106540352242922".into()),
                token_ref: Some("secretsmanager:campaigns/acme/meta-token".into()),
                waba_id: Some("102290129340398".into()),
                ..Default::default()
            },
            chrono::Utc::now(),
        )
        .unwrap();
        // Stored before references were confined to the tenant's namespace.
        a.token_ref = "secretsmanager:campaigns/globex/meta-token".into();
        let secrets = Counting::default();
        let err = credential(&secrets, &a, "meta").await.unwrap_err();
        assert_eq!(err.class, FailureClass::Campaign);
        assert_eq!(secrets.0.load(Ordering::SeqCst), 0, "never looked up");
        a.token_ref = "secretsmanager:campaigns/acme/meta-token".into();
        assert!(credential(&secrets, &a, "meta").await.is_ok());
    }

    struct Failing(PortError);

    #[async_trait::async_trait]
    impl Secrets for Failing {
        async fn resolve(&self, _reference: &str) -> PortResult<String> {
            Err(self.0.clone())
        }
    }

    /// Finding 14: a secrets store that cannot answer just now must not pause the
    /// campaign; one that says the secret is not there (or not readable) must.
    #[tokio::test]
    async fn a_transient_secrets_failure_puts_the_entry_back_without_pausing() {
        let a = Account::create(
            "acme",
            NewAccount {
                name: Some("Main".into()),
                sender_id: Some("106540352242922".into()),
                token_ref: Some("secretsmanager:campaigns/acme/meta-token".into()),
                waba_id: Some("102290129340398".into()),
                ..Default::default()
            },
            chrono::Utc::now(),
        )
        .unwrap();
        let busy = Failing(PortError::Backend("extension answered 503".into()));
        let err = credential(&busy, &a, "meta").await.unwrap_err();
        assert_eq!(err.class, FailureClass::NotAttempted);
        let gone = Failing(PortError::Refused("extension answered 400".into()));
        let err = credential(&gone, &a, "meta").await.unwrap_err();
        assert_eq!(err.class, FailureClass::Campaign);
    }
}
