//! The simulator without HTTP: Meta's template send as a [`MessagingProvider`] called in
//! process, with the `/messages` route's admission (per-number throughput limits,
//! configured failures), answer time and records. The capacity scenario of the benchmark
//! runs on tokio's paused clock, where a loopback socket cannot be used (the clock jumps
//! ahead while a request is on the wire); this path has no socket to wait on. It does not
//! check bodies against Meta's schema and posts no webhooks: the HTTP route does both,
//! and its tests cover them.

use super::*;
use async_trait::async_trait;
use shared::domain::account::Account;
use shared::domain::outcome::SendFailure;
use shared::ports::{Accepted, MessagingProvider, OutboundTemplate};

/// Meta's send API of one [`Simulator`], in process ([`Simulator::direct_meta`]).
pub struct DirectMeta(pub(super) Arc<Inner>);

#[async_trait]
impl MessagingProvider for DirectMeta {
    async fn send(
        &self,
        account: &Account,
        msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        let inner = &self.0;
        let to = msg.to.as_str();
        // Recorded at its arrival, the instant the throughput limit counted it.
        let outcome = match admit(inner, SimProvider::Meta, &account.sender_id, to, None) {
            Admission::Accept => Ok(SentRecord {
                wamid: format!(
                    "wamid.SIM{}",
                    inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1
                ),
                provider: SimProvider::Meta,
                version: "direct".into(),
                phone_number_id: account.sender_id.clone(),
                to: to.to_owned(),
                template: msg.template.clone(),
                language: Some(msg.language.clone()),
                params: msg.params.clone(),
                quick_reply_payloads: msg.quick_reply_payloads.clone(),
                url_suffix: msg.url_suffix.as_ref().map(|u| u.text.clone()),
                callback_data: (!msg.marketing_messages).then(|| msg.callback_data.clone()),
                marketing_messages: msg.marketing_messages,
                options: BTreeMap::new(),
                at: inner.clock.now(),
            }),
            Admission::Throttle(_) => Err(SendFailure::meta(
                META_RATE_LIMIT_CODE,
                META_RATE_LIMIT_MESSAGE,
            )),
            Admission::Fail(f) => {
                let code = f.meta_code();
                Err(SendFailure::meta(code, meta_code_info(code).1))
            }
        };
        provider_latency(inner).await;
        let record = outcome?;
        let message_id = record.wamid.clone();
        inner.state.lock().unwrap().sent.push(record);
        Ok(Accepted {
            message_id,
            message_status: Some("accepted".into()),
        })
    }
}
