//! What the simulator posts back: status flows (sent, delivered, read), automatic and
//! requested replies, signed for Meta and token-carrying for Kaleyra.

use super::*;

/// Posts Kaleyra v2 callbacks `sent`, `delivered`, `read` for one send.
pub(super) async fn kaleyra_status_flow(inner: &Arc<Inner>, sent: &SentRecord, from: &str) {
    let phone = digits(&sent.to);
    for (kind, status) in [
        (WebhookKind::Sent, "sent"),
        (WebhookKind::Delivered, "delivered"),
        (WebhookKind::Read, "read"),
    ] {
        pause(inner).await;
        let n = inner.in_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut extra = json!({
            "trace_id": format!("sim-trace-{n}"),
            "message_id": sent.wamid,
            "waba_id": SIM_WABA_ID,
        });
        if let Some(r) = &sent.callback_data {
            extra["ref"] = Value::String(r.clone());
        }
        let body = json!({
            "meta_object": {"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": from, "phone_number_id": SIM_DEFAULT_PHONE_NUMBER_ID},
                "statuses": [{"id": sent.wamid, "status": status,
                    "timestamp": inner.clock.now().timestamp().to_string(), "recipient_id": phone}],
            }},
            "extra_info": extra,
            "status": status,
            "message_id": sent.wamid,
        });
        let url = kaleyra_url_of(inner, &sent.phone_number_id);
        deliver_to(inner, url, None, kind, &sent.wamid, &phone, &body).await;
    }
}

/// The callback URL the account sending as `<sid>:<from>` registered with Kaleyra.
fn kaleyra_url_of(inner: &Inner, sender: &str) -> Option<String> {
    let url = inner.cfg.kaleyra_callback_url.clone()?;
    let Some(secret) = &inner.cfg.kaleyra_callback_secret else {
        return Some(url);
    };
    let sid = sender.split_once(':').map_or(sender, |(sid, _)| sid);
    let token = shared::providers::kaleyra::callback_token(secret, sid);
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}sid={sid}&token={token}"))
}

/// Whether the contact answers: a stable hash of the phone below `reply_percent`.
pub fn will_reply(phone: &str, reply_percent: u8) -> bool {
    stable_hash(phone) % 100 < u64::from(reply_percent)
}

/// The phone_number_id Meta's webhooks name for a send's number: the send's own (Cloud
/// API), or Meta's id behind AWS's origination id.
fn wire_phone_number_id(sent_provider: SimProvider, sender: &str) -> String {
    match sent_provider {
        SimProvider::AwsSocial => meta_phone_number_id(sender),
        _ => sender.to_owned(),
    }
}

/// Delivers a webhook body about a send of `provider` from `sender` the way that provider
/// does: AWS End User Messaging Social's as an event on its sink, else signed to the
/// webhook URL.
async fn deliver_by(
    inner: &Inner,
    provider: SimProvider,
    sender: &str,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
    body: &Value,
) -> WebhookRecord {
    match provider {
        SimProvider::AwsSocial => deliver_aws(inner, sender, kind, message_id, phone, body).await,
        _ => deliver(inner, kind, message_id, phone, body).await,
    }
}

pub(super) async fn status_flow(inner: &Arc<Inner>, sent: &SentRecord) {
    let phone = digits(&sent.to);
    let pnid = wire_phone_number_id(sent.provider, &sent.phone_number_id);
    // A number not on WhatsApp: Meta takes the message, then reports it undeliverable.
    let undeliverable = inner.cfg.not_on_whatsapp.iter().any(|n| digits(n) == phone);
    for (kind, status) in [
        (WebhookKind::Sent, "sent"),
        (WebhookKind::Delivered, "delivered"),
        (WebhookKind::Read, "read"),
    ] {
        pause(inner).await;
        let status = if undeliverable && status != "sent" {
            "failed"
        } else {
            status
        };
        let mut item = json!({
            "id": sent.wamid,
            "status": status,
            "timestamp": inner.clock.now().timestamp().to_string(),
            "recipient_id": phone,
        });
        if status == "failed" {
            item["errors"] = json!([{"code": 131026, "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "Message Undeliverable."}}]);
        }
        if let Some(cb) = &sent.callback_data {
            item["biz_opaque_callback_data"] = Value::String(cb.clone());
        }
        if status != "read" {
            item["pricing"] = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "marketing"});
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": SIM_DISPLAY_PHONE_NUMBER, "phone_number_id": pnid},
            "statuses": [item],
        });
        let body = envelope(value);
        deliver_by(
            inner,
            sent.provider,
            &sent.phone_number_id,
            kind,
            &sent.wamid,
            &phone,
            &body,
        )
        .await;
        if status == "failed" {
            return;
        }
    }
    if !will_reply(&phone, inner.cfg.reply_percent) {
        return;
    }
    pause(inner).await;
    let reply = match sent.quick_reply_payloads.first() {
        Some(p) => ReplyKind::Button(p.clone()),
        None => ReplyKind::Text(inner.cfg.reply_text.clone()),
    };
    // Typed replies come without context, taps with the template's id.
    let context = match reply {
        ReplyKind::Button(_) => Some(sent.wamid.as_str()),
        ReplyKind::Text(_) => None,
    };
    let (kind, id, body) = inbound_message(inner, &pnid, &phone, &reply, context);
    deliver_by(
        inner,
        sent.provider,
        &sent.phone_number_id,
        kind,
        &id,
        &phone,
        &body,
    )
    .await;
}

pub(super) async fn pause(inner: &Inner) {
    if !inner.cfg.status_delay.is_zero() {
        tokio::time::sleep(inner.cfg.status_delay).await;
    }
}

pub(super) fn envelope(value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": SIM_WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    })
}

/// The webhook body of an inbound message, its kind and its id.
pub(super) fn inbound_message(
    inner: &Inner,
    phone_number_id: &str,
    phone: &str,
    reply: &ReplyKind,
    context_id: Option<&str>,
) -> (WebhookKind, String, Value) {
    let n = inner.in_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("wamid.SIMIN{n}");
    let mut msg = json!({
        "from": phone,
        "id": id,
        "timestamp": inner.clock.now().timestamp().to_string(),
    });
    if let Some(ctx) = context_id {
        msg["context"] = json!({"from": SIM_DISPLAY_PHONE_NUMBER, "id": ctx});
    }
    let kind = match reply {
        ReplyKind::Text(t) => {
            msg["type"] = json!("text");
            msg["text"] = json!({ "body": t });
            WebhookKind::ReplyText
        }
        ReplyKind::Button(p) => {
            msg["type"] = json!("button");
            msg["button"] = json!({"payload": p, "text": p});
            WebhookKind::ReplyButton
        }
    };
    let value = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": SIM_DISPLAY_PHONE_NUMBER, "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Simulated Customer"}, "wa_id": phone}],
        "messages": [msg],
    });
    (kind, id, envelope(value))
}

/// Signs and posts one webhook, records and returns what happened.
pub(super) async fn deliver(
    inner: &Inner,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
    body: &Value,
) -> WebhookRecord {
    let url = inner.webhook_url.lock().unwrap().clone();
    let secret = Some(inner.cfg.app_secret.as_bytes());
    deliver_to(inner, url, secret, kind, message_id, phone, body).await
}

/// Posts one webhook to `url`, signed (`X-Hub-Signature-256`) when `secret` is given,
/// records and returns what happened.
pub(super) async fn deliver_to(
    inner: &Inner,
    url: Option<String>,
    secret: Option<&[u8]>,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
    body: &Value,
) -> WebhookRecord {
    let bytes = serde_json::to_vec(body).expect("JSON values serialize");
    let (answered, error) = match url {
        None => (None, Some(SimError::NoWebhookUrl.to_string())),
        Some(url) => {
            let mut req = inner
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(secret) = secret {
                req = req.header(SIGNATURE_HEADER, signature_header(secret, &bytes));
            }
            let res = req.body(bytes.clone()).send().await;
            match res {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // Drain the answer so the connection can be reused.
                    let _ = r.bytes().await;
                    (Some(status), None)
                }
                Err(e) => (None, Some(e.to_string())),
            }
        }
    };
    if let Some(e) = &error {
        tracing::warn!(kind = ?kind, message_id, error = %e, "simulator webhook not delivered");
    }
    let record = WebhookRecord {
        kind,
        message_id: message_id.to_owned(),
        phone: phone.to_owned(),
        body: String::from_utf8(bytes).expect("serde_json writes UTF-8"),
        answered,
        error,
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().webhooks.push(record.clone());
    record
}

pub(super) async fn post_reply(
    inner: &Arc<Inner>,
    phone: &str,
    reply: ReplyKind,
    context_id: Option<&str>,
    phone_number_id: Option<&str>,
) -> Result<WebhookRecord, SimError> {
    let phone = PhoneNumber::parse(phone).map_err(|e| SimError::InvalidPhone(e.to_string()))?;
    let phone = phone.as_str();
    let (last_to_phone, last_any) = {
        let st = inner.state.lock().unwrap();
        let last = st
            .sent
            .iter()
            .rev()
            .find(|s| digits(&s.to) == phone)
            .cloned();
        (last, st.sent.last().map(|s| s.phone_number_id.clone()))
    };
    let context = match context_id {
        Some("") => None,
        Some(c) => Some(c.to_owned()),
        None => last_to_phone.as_ref().map(|s| s.wamid.clone()),
    };
    let pnid = phone_number_id
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| last_to_phone.as_ref().map(|s| s.phone_number_id.clone()))
        .or(last_any)
        .or_else(|| inner.cfg.phone_number_id_filter.clone())
        .unwrap_or_else(|| SIM_DEFAULT_PHONE_NUMBER_ID.to_owned());
    // A reply reaches the business the way the number's last send went out.
    let provider = last_to_phone
        .as_ref()
        .filter(|s| s.phone_number_id == pnid)
        .map_or(SimProvider::Meta, |s| s.provider);
    let reachable = match provider {
        SimProvider::AwsSocial => inner.aws_sink.lock().unwrap().is_some(),
        _ => inner.webhook_url.lock().unwrap().is_some(),
    };
    if !reachable {
        return Err(SimError::NoWebhookUrl);
    }
    let wire = wire_phone_number_id(provider, &pnid);
    let (kind, id, body) = inbound_message(inner, &wire, phone, &reply, context.as_deref());
    Ok(deliver_by(inner, provider, &pnid, kind, &id, phone, &body).await)
}
