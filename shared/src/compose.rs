//! Composition: what every composition root (the Lambda mains, the local runner) builds
//! the same way, from configuration: one HTTP client per process, the messaging
//! providers chosen per account, the template source, and the operator API's services.
//! The mains only read their own variables and pick the adapters of their platform.

use crate::adapters::secrets::SecretResolver;
use crate::app::conversations::Conversations;
use crate::app::templates::TemplateSync;
use crate::app::Operator;
use crate::config;
use crate::http::operator::OperatorServices;
use crate::ports::{MessagingProvider, ObjectStore, Secrets, TemplateSource};
use crate::providers::aws_sms::AwsSmsProvider;
use crate::providers::aws_social::AwsSocialProvider;
use crate::providers::connect::ConnectProvider;
use crate::providers::kaleyra::KaleyraProvider;
use crate::providers::meta::MetaProvider;
use crate::providers::meta_templates::MetaTemplates;
use crate::providers::twilio::TwilioProvider;
use crate::providers::ByAccountProvider;
use std::sync::Arc;

/// Where the provider APIs are.
#[derive(Debug, Clone)]
pub struct ProviderUrls {
    /// Meta's Graph API, e.g. `https://graph.facebook.com`.
    pub graph_url: String,
    /// e.g. `v23.0`.
    pub graph_version: String,
    /// Kaleyra's API, e.g. `https://api.kaleyra.io`.
    pub kaleyra_url: String,
    /// AWS End User Messaging Social's endpoint; `None`: AWS's own for the region.
    pub aws_social_url: Option<String>,
    /// Twilio's API, e.g. `https://api.twilio.com`.
    pub twilio_url: String,
    /// The public base URL Twilio posts status callbacks to (the webhook API's), which
    /// its signatures are computed over; `None` sends without a `StatusCallback`.
    pub twilio_callback_base: Option<String>,
    /// AWS End User Messaging SMS's endpoint; `None`: AWS's own for the region.
    pub aws_sms_url: Option<String>,
    /// The configuration set whose event destination feeds the inbound queue
    /// (`SMS_CONFIGURATION_SET`); `None` sends without one.
    pub sms_configuration_set: Option<String>,
    /// The protect configuration (country rules, SMS pumping protection) every SMS is
    /// sent under (`SMS_PROTECT_CONFIGURATION`); `None`: the account's default.
    pub sms_protect_configuration: Option<String>,
    /// Amazon Connect's endpoint; `None`: AWS's own for the region.
    pub connect_url: Option<String>,
}

/// The protect configuration of the simulated AWS account ([`ProviderUrls::all_at`]).
pub const SIMULATED_PROTECT_CONFIGURATION: &str = "protect-0123456789abcdef0123456789abcdef";

fn env_set(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ProviderUrls {
    /// `META_GRAPH_URL`, `META_GRAPH_VERSION`, `KALEYRA_API_URL`, with the public
    /// endpoints as defaults.
    pub fn from_env() -> Self {
        let (graph_url, graph_version) = config::meta_graph();
        ProviderUrls {
            graph_url,
            graph_version,
            kaleyra_url: config::optional("KALEYRA_API_URL", "https://api.kaleyra.io"),
            aws_social_url: None,
            twilio_url: config::optional("TWILIO_API_URL", "https://api.twilio.com"),
            twilio_callback_base: config::public_webhook_url(),
            aws_sms_url: None,
            sms_configuration_set: env_set("SMS_CONFIGURATION_SET"),
            sms_protect_configuration: env_set("SMS_PROTECT_CONFIGURATION"),
            connect_url: None,
        }
    }

    /// Every provider at one base URL (the simulator answers all four APIs), with no
    /// Twilio status callbacks ([`ProviderUrls::with_callbacks_to`]).
    pub fn all_at(base_url: impl Into<String>) -> Self {
        let base = base_url.into();
        ProviderUrls {
            graph_url: base.clone(),
            graph_version: "v23.0".into(),
            kaleyra_url: base.clone(),
            aws_social_url: Some(base.clone()),
            twilio_url: base.clone(),
            twilio_callback_base: None,
            aws_sms_url: Some(base.clone()),
            sms_configuration_set: Some("sim-configuration-set".into()),
            sms_protect_configuration: Some(SIMULATED_PROTECT_CONFIGURATION.into()),
            connect_url: Some(base),
        }
    }

    /// Twilio's status callbacks to the webhook routes served at `base_url`.
    pub fn with_callbacks_to(mut self, base_url: impl Into<String>) -> Self {
        self.twilio_callback_base = Some(base_url.into());
        self
    }
}

/// How each provider's credential references resolve. In AWS all are the secrets
/// extension; the local runner answers each provider's reference with the simulator's
/// credential of that provider (for AWS End User Messaging Social: the grant of its
/// number).
#[derive(Clone)]
pub struct ProviderSecrets {
    pub meta: Arc<dyn Secrets>,
    pub kaleyra: Arc<dyn Secrets>,
    pub aws_social: Arc<dyn Secrets>,
    pub twilio: Arc<dyn Secrets>,
    pub aws_sms: Arc<dyn Secrets>,
    pub connect: Arc<dyn Secrets>,
}

impl ProviderSecrets {
    pub fn same(secrets: Arc<dyn Secrets>) -> Self {
        ProviderSecrets {
            meta: secrets.clone(),
            kaleyra: secrets.clone(),
            aws_social: secrets.clone(),
            twilio: secrets.clone(),
            aws_sms: secrets.clone(),
            connect: secrets,
        }
    }
}

/// The providers a process talks to.
#[derive(Clone)]
pub struct Providers {
    /// Sends through the adapter of each account's provider.
    pub messaging: Arc<dyn MessagingProvider>,
    /// Meta's template list (R3.4).
    pub templates: Arc<dyn TemplateSource>,
}

impl Providers {
    /// Every adapter on the process's one client `http`; AWS End User Messaging Social on
    /// an SDK client of `sdk` (region, credentials).
    pub fn new(
        urls: &ProviderUrls,
        http: &reqwest::Client,
        secrets: &ProviderSecrets,
        sdk: &aws_config::SdkConfig,
    ) -> Self {
        let meta = MetaProvider::with_client(
            http.clone(),
            &urls.graph_url,
            &urls.graph_version,
            secrets.meta.clone(),
        );
        let kaleyra =
            KaleyraProvider::with_client(http.clone(), &urls.kaleyra_url, secrets.kaleyra.clone());
        Providers {
            messaging: Arc::new(ByAccountProvider {
                meta: Arc::new(meta),
                kaleyra: Arc::new(kaleyra),
                aws_social: Arc::new(AwsSocialProvider::new(
                    sdk,
                    urls.aws_social_url.as_deref(),
                    &urls.graph_version,
                    secrets.aws_social.clone(),
                )),
                twilio: Arc::new(TwilioProvider::with_client(
                    http.clone(),
                    &urls.twilio_url,
                    urls.twilio_callback_base.clone(),
                    secrets.twilio.clone(),
                )),
                aws_sms: Arc::new(
                    AwsSmsProvider::new(
                        sdk,
                        urls.aws_sms_url.as_deref(),
                        urls.sms_configuration_set.clone(),
                        secrets.aws_sms.clone(),
                    )
                    .with_protect_configuration(urls.sms_protect_configuration.clone()),
                ),
                connect: Arc::new(ConnectProvider::new(
                    sdk,
                    urls.connect_url.as_deref(),
                    secrets.connect.clone(),
                )),
            }),
            templates: Arc::new(MetaTemplates::with_client(
                http.clone(),
                &urls.graph_url,
                &urls.graph_version,
                secrets.meta.clone(),
            )),
        }
    }

    /// In AWS: the URLs from the environment, credentials through the secrets extension,
    /// all on `http`; AWS End User Messaging Social signed with the function's role.
    pub fn from_env(http: &reqwest::Client, sdk: &aws_config::SdkConfig) -> Self {
        let secrets = Arc::new(SecretResolver::on_client(http.clone()));
        Self::new(
            &ProviderUrls::from_env(),
            http,
            &ProviderSecrets::same(secrets),
            sdk,
        )
    }
}

/// The operator API's use cases: `operator` and the services that also need a provider
/// (template synchronisation, the recontact message); `objects` for presigned uploads.
pub fn operator_services(
    operator: Operator,
    providers: &Providers,
    objects: Option<Arc<dyn ObjectStore>>,
) -> OperatorServices {
    let ports = operator.ports.clone();
    OperatorServices {
        operator,
        sync: Arc::new(TemplateSync {
            table: ports.table.clone(),
            bus: ports.bus.clone(),
            clock: ports.clock.clone(),
            source: providers.templates.clone(),
        }),
        conversations: Arc::new(Conversations {
            table: ports.table,
            provider: providers.messaging.clone(),
            clock: ports.clock,
        }),
        objects,
    }
}
