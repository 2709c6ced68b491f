//! Messaging providers: adapters of the `MessagingProvider` port and the webhook
//! formats each provider posts back.

pub mod kaleyra;
pub mod meta;
pub mod meta_templates;

use crate::domain::account::{Account, Provider};
use crate::domain::outcome::SendFailure;
use crate::ports::{MessagingProvider, OutboundTemplate};
use async_trait::async_trait;
use std::sync::Arc;

/// Sends through the adapter of the account's provider, so one sender serves Meta and
/// Kaleyra accounts alike.
pub struct ByAccountProvider {
    pub meta: Arc<dyn MessagingProvider>,
    pub kaleyra: Arc<dyn MessagingProvider>,
}

#[async_trait]
impl MessagingProvider for ByAccountProvider {
    async fn send(&self, account: &Account, msg: &OutboundTemplate) -> Result<String, SendFailure> {
        match account.provider {
            Provider::Meta => self.meta.send(account, msg).await,
            Provider::Kaleyra => self.kaleyra.send(account, msg).await,
        }
    }
}
