//! Messaging providers: adapters of the `MessagingProvider` port and the webhook
//! formats each provider posts back.

pub mod meta;
pub mod meta_templates;
