//! The provider APIs the engine calls: Meta's Cloud API send and template list, Kaleyra's
//! v2 send; the per-sender throughput limit.

use super::*;

pub(super) fn api_router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/{version}/{phone_number_id}/messages", post(send_message))
        .route(
            "/{version}/{phone_number_id}/marketing_messages",
            post(send_marketing_message),
        )
        .route("/v2/{sid}/whatsapp/{from}/messages", post(kaleyra_send))
        .route("/v1/whatsapp/send", post(aws_send))
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(super::twilio::twilio_send),
        )
        // AWS JSON 1.0 services post to the root (End User Messaging SMS).
        .route("/", post(super::aws_sms::aws_json))
        // restJson1: Amazon Connect's StartOutboundVoiceContact.
        .route(
            "/contact/outbound-voice",
            axum::routing::put(super::connect::start_outbound_voice_contact),
        )
        // The id here is the WABA's; the segment shares the send route's name.
        .route(
            "/{version}/{phone_number_id}/message_templates",
            get(list_templates),
        )
        .route("/{version}/{phone_number_id}", get(phone_number))
        .with_state(inner)
}

/// `GET /{version}/{phone_number_id}?fields=...`: the number's messaging limit tier, under
/// the 2026 name (`whatsapp_business_manager_messaging_limit`) and the older one.
pub(super) async fn phone_number(
    State(inner): State<Arc<Inner>>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&inner, &headers) {
        return refused;
    }
    let tier = &inner.cfg.messaging_limit_tier;
    Json(json!({
        "id": id,
        "whatsapp_business_manager_messaging_limit": tier,
        "messaging_limit_tier": tier,
    }))
    .into_response()
}

pub(super) fn throttle_details(limit: u32) -> String {
    format!(
        "Message failed to send because there were too many messages sent from this phone \
         number in a short period of time (simulated limit: {limit} messages/s)"
    )
}

/// Epoch seconds of each time, counted.
pub(super) fn per_second(times: impl Iterator<Item = Time>) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for t in times {
        *out.entry(t.timestamp()).or_insert(0) += 1;
    }
    out
}

/// Decides, under one lock, what becomes of a well-formed send from `sender` to `to`: the
/// throughput limit first (a refused send is recorded in `throttled`), then `pre_failure`
/// (Kaleyra's invalid numbers), then the number's configured failure (counting down its
/// `times`); an accepted send counts in its sender's current clock second.
pub(super) fn admit(
    inner: &Inner,
    provider: SimProvider,
    sender: &str,
    to: &str,
    pre_failure: Option<SimFailure>,
) -> Admission {
    let now = inner.clock.now();
    let second = now.timestamp();
    let mut st = inner.state.lock().unwrap();
    let used = match st.windows.get(sender) {
        Some(&(s, n)) if s == second => n,
        _ => 0,
    };
    // An upgraded number has its own limit (Meta: 1,000/s); the others the default.
    let limit = st.number_limits.get(sender).copied().or(st.rate_limit);
    if let Some(limit) = limit {
        if used >= limit {
            st.throttled.push(ThrottleRecord {
                provider,
                phone_number_id: sender.to_owned(),
                to: to.to_owned(),
                limit,
                at: now,
            });
            tracing::debug!(sender, limit, "simulator throttled a send (130429)");
            return Admission::Throttle(limit);
        }
    }
    if let Some(f) = pre_failure {
        return Admission::Fail(f);
    }
    let phone = digits(to);
    let mut strike = None;
    let mut spent = false;
    if let Some(f) = st.failures.get_mut(&phone) {
        match f.times {
            None => strike = Some(f.clone()),
            Some(0) => spent = true,
            Some(n) => {
                strike = Some(f.clone());
                f.times = Some(n - 1);
                spent = n == 1;
            }
        }
    }
    if spent {
        st.failures.remove(&phone);
    }
    if let Some(f) = strike {
        return Admission::Fail(f);
    }
    st.windows.insert(sender.to_owned(), (second, used + 1));
    Admission::Accept
}

/// Waits as long as the provider takes to answer a send: one draw of
/// [`SimConfig::latency`] (nothing when unset).
pub(super) async fn provider_latency(inner: &Inner) {
    let Some(latency) = inner.cfg.latency else {
        return;
    };
    let draw = {
        let mut st = inner.state.lock().unwrap();
        st.latency_draws += 1;
        st.latency_draws
    };
    tokio::time::sleep(latency.sample(draw)).await;
}

pub(super) fn invalid_param(details: &str) -> Response {
    meta_error(
        StatusCode::BAD_REQUEST,
        100,
        "(#100) Invalid parameter",
        Some(details),
    )
}

pub(super) fn digits(s: &str) -> String {
    PhoneNumber::parse(s)
        .map(String::from)
        .unwrap_or_else(|_| s.chars().filter(char::is_ascii_digit).collect())
}

pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

/// Meta's answer to a request without the simulator's bearer token (code 190).
fn unauthorized(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {}", inner.cfg.access_token);
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    (auth != Some(expected.as_str())).then(|| {
        meta_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            None,
        )
    })
}

/// `POST /{version}/{phone_number_id}/messages`: the Cloud API's send.
pub(super) async fn send_message(
    State(inner): State<Arc<Inner>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    cloud_send(inner, version, phone_number_id, headers, body, false).await
}

/// `POST /{version}/{phone_number_id}/marketing_messages`: Meta's Marketing Messages API,
/// the same send with the body held to `MarketingMessageRequestPayload` (it takes no
/// callback data, so its statuses carry none).
pub(super) async fn send_marketing_message(
    State(inner): State<Arc<Inner>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    cloud_send(inner, version, phone_number_id, headers, body, true).await
}

async fn cloud_send(
    inner: Arc<Inner>,
    version: String,
    phone_number_id: String,
    headers: HeaderMap,
    body: Bytes,
    marketing_messages: bool,
) -> Response {
    if let Some(refused) = unauthorized(&inner, &headers) {
        return refused;
    }
    if let Some(only) = &inner.cfg.phone_number_id_filter {
        if *only != phone_number_id {
            return meta_error(
                StatusCode::BAD_REQUEST,
                100,
                &format!(
                    "Unsupported post request. Object with ID '{phone_number_id}' does not exist"
                ),
                None,
            );
        }
    }
    let schema = if marketing_messages {
        crate::meta_schema::marketing_violations
    } else {
        crate::meta_schema::violations
    };
    let (req, to, template) = match template_request(&body, schema) {
        Ok(parts) => parts,
        Err(details) => return invalid_param(&details),
    };
    let arrived = inner.clock.now();
    let admission = admit(&inner, SimProvider::Meta, &phone_number_id, &to, None);
    provider_latency(&inner).await;
    match admission {
        Admission::Accept => {}
        Admission::Throttle(limit) => {
            return meta_error(
                StatusCode::BAD_REQUEST,
                META_RATE_LIMIT_CODE,
                META_RATE_LIMIT_MESSAGE,
                Some(&throttle_details(limit)),
            )
        }
        Admission::Fail(f) => return meta_failure(f.meta_code(), None),
    }
    let mut record = sent_record(
        &inner,
        SimProvider::Meta,
        version,
        phone_number_id,
        &req,
        &to,
        &template,
    );
    record.marketing_messages = marketing_messages;
    record.at = arrived;
    let wamid = record.wamid.clone();
    inner.state.lock().unwrap().sent.push(record.clone());
    let wa_id = digits(&to);
    tracing::debug!(wamid = %wamid, template = %record.template, "simulator accepted a template");

    if inner.webhook_url.lock().unwrap().is_some() {
        let guard = PendingGuard::new(&inner);
        tokio::spawn(async move {
            status_flow(&guard.0, &record).await;
            drop(guard);
        });
    }

    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": wa_id}],
        "messages": [{"id": wamid, "message_status": "accepted"}],
    }))
    .into_response()
}

/// How a body breaks one of Meta's request schemas (`crate::meta_schema`).
pub(super) type Schema = fn(&Value) -> Vec<crate::meta_schema::Violation>;

/// A template send's body checked as Meta checks it: JSON, valid against `schema` (Meta's
/// own OpenAPI description of the route), `messaging_product` whatsapp, a recipient, a
/// named template. The body, `to` and the template's name; else the details of Meta's
/// error 100.
pub(super) fn template_request(
    body: &[u8],
    schema: Schema,
) -> Result<(Value, String, String), String> {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return Err("the request body is not JSON".into());
    };
    if let Some(v) = schema(&req).first() {
        tracing::debug!(violation = %v, "simulator refused a body that fails Meta's schema");
        return Err(v.to_string());
    }
    if str_at(&req, &["messaging_product"]) != Some("whatsapp") {
        return Err("messaging_product must be whatsapp".into());
    }
    let Some(to) = str_at(&req, &["to"]).filter(|s| !s.trim().is_empty()) else {
        return Err("to is required".into());
    };
    if str_at(&req, &["type"]) != Some("template") {
        return Err("the simulator accepts type template only".into());
    }
    let Some(template) = str_at(&req, &["template", "name"]).filter(|s| !s.is_empty()) else {
        return Err("template.name is required".into());
    };
    let (to, template) = (to.to_owned(), template.to_owned());
    Ok((req, to, template))
}

/// The record of an accepted template send, with a new `wamid.SIM<n>`.
pub(super) fn sent_record(
    inner: &Inner,
    provider: SimProvider,
    version: String,
    phone_number_id: String,
    req: &Value,
    to: &str,
    template: &str,
) -> SentRecord {
    let (params, payloads) = template_parts(req);
    let n = inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1;
    SentRecord {
        wamid: format!("wamid.SIM{n}"),
        provider,
        version,
        phone_number_id,
        to: to.to_owned(),
        template: template.to_owned(),
        language: str_at(req, &["template", "language", "code"]).map(str::to_owned),
        params,
        quick_reply_payloads: payloads,
        url_suffix: url_suffix(req),
        callback_data: str_at(req, &["biz_opaque_callback_data"]).map(str::to_owned),
        marketing_messages: false,
        options: BTreeMap::new(),
        at: inner.clock.now(),
    }
}

/// `GET /{version}/{waba_id}/message_templates?limit=&after=`: a page of the configured
/// templates; cursors are `c<offset>`.
pub(super) async fn list_templates(
    State(inner): State<Arc<Inner>>,
    Path((version, waba_id)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&inner, &headers) {
        return refused;
    }
    let limit = q.get("limit").and_then(|l| l.parse::<u32>().ok());
    let after = q.get("after").cloned();
    let mut st = inner.state.lock().unwrap();
    st.template_lists.push(TemplateListRequest {
        waba_id: waba_id.clone(),
        limit,
        after: after.clone(),
    });
    let start = match after.as_deref() {
        None => 0,
        Some(c) => match c.strip_prefix('c').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= st.templates.len() => n,
            _ => return invalid_param("after: unknown cursor"),
        },
    };
    let mut size = limit.map_or(SIM_TEMPLATE_PAGE, |l| l.clamp(1, 1000) as usize);
    if st.template_page_size > 0 {
        size = size.min(st.template_page_size);
    }
    let end = (start + size).min(st.templates.len());
    let data = st.templates[start..end].to_vec();
    let mut paging =
        json!({"cursors": {"before": format!("c{start}"), "after": format!("c{end}")}});
    if end < st.templates.len() {
        paging["next"] = Value::String(format!(
            "https://graph.facebook.com/{version}/{waba_id}/message_templates?limit={size}&after=c{end}"
        ));
    }
    Json(json!({"data": data, "paging": paging})).into_response()
}

/// `POST /v2/{sid}/whatsapp/{from}/messages`: Kaleyra's v2 send API.
pub(super) async fn kaleyra_send(
    State(inner): State<Arc<Inner>>,
    Path((sid, from)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers.get("api-key").and_then(|h| h.to_str().ok());
    if key != Some(inner.cfg.kaleyra_api_key.as_str()) {
        return kaleyra_error(
            StatusCode::UNAUTHORIZED,
            "RBC001",
            "Incorrect SID or API key.",
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return kaleyra_error(StatusCode::BAD_REQUEST, "WA400", "Incorrect payload.");
    };
    let m = &req["messaging_object"];
    let to = str_at(m, &["to"]).filter(|s| !s.trim().is_empty());
    let template = str_at(m, &["template", "name"]).filter(|s| !s.is_empty());
    let (Some(to), Some(template), Some("whatsapp"), Some("template")) = (
        to,
        template,
        str_at(m, &["messaging_product"]),
        str_at(m, &["type"]),
    ) else {
        return kaleyra_error(StatusCode::BAD_REQUEST, "WA400", "Incorrect payload.");
    };
    let phone = digits(to);
    let sender = format!("{sid}:{from}");
    let invalid = inner
        .cfg
        .kaleyra_invalid_numbers
        .iter()
        .any(|n| digits(n) == phone)
        .then(SimFailure::permanent);
    let admission = admit(&inner, SimProvider::Kaleyra, &sender, to, invalid);
    provider_latency(&inner).await;
    match admission {
        Admission::Accept => {}
        Admission::Throttle(limit) => {
            return kaleyra_meta_error(
                StatusCode::TOO_MANY_REQUESTS,
                META_RATE_LIMIT_CODE,
                Some(&throttle_details(limit)),
            )
        }
        Admission::Fail(f) => return kaleyra_failure(&f),
    }
    let (params, payloads) = template_parts(m);
    let n = inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let wamid = format!("wamid.SIM{n}");
    let callback_data = str_at(&req, &["extra_info", "ref"])
        .or_else(|| str_at(m, &["biz_opaque_callback_data"]))
        .map(str::to_owned);
    let record = SentRecord {
        wamid: wamid.clone(),
        provider: SimProvider::Kaleyra,
        version: "v2".into(),
        phone_number_id: sender,
        to: to.to_owned(),
        template: template.to_owned(),
        language: str_at(m, &["template", "language", "code"]).map(str::to_owned),
        params,
        quick_reply_payloads: payloads,
        url_suffix: url_suffix(m),
        callback_data,
        marketing_messages: false,
        options: BTreeMap::new(),
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().sent.push(record.clone());
    if inner.cfg.kaleyra_callback_url.is_some() {
        let guard = PendingGuard::new(&inner);
        tokio::spawn(async move {
            kaleyra_status_flow(&guard.0, &record, &from).await;
            drop(guard);
        });
    }
    Json(json!({
        "code": "WA200",
        "message": "Message sent successfully.",
        "data": [{"message_id": wamid, "recipient": phone}],
        "error": {},
    }))
    .into_response()
}

/// The text parameter of a template message's URL button, if it has one.
fn url_suffix(m: &Value) -> Option<String> {
    let components = m["template"].get("components")?.as_array()?;
    let button = components.iter().find(|c| {
        str_at(c, &["type"]) == Some("button") && str_at(c, &["sub_type"]) == Some("url")
    })?;
    button["parameters"][0]["text"].as_str().map(str::to_owned)
}

/// Body parameters and quick-reply payloads of a Cloud API template message.
pub(super) fn template_parts(m: &Value) -> (Vec<String>, Vec<String>) {
    let mut params = Vec::new();
    let mut payloads = Vec::new();
    let components = m["template"].get("components").and_then(Value::as_array);
    for c in components.into_iter().flatten() {
        let parameters = c
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        match (str_at(c, &["type"]), str_at(c, &["sub_type"])) {
            (Some("body"), _) => params.extend(
                parameters
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(str::to_owned),
            ),
            (Some("button"), Some("quick_reply")) => payloads.extend(
                parameters
                    .filter_map(|p| p.get("payload").and_then(Value::as_str))
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    (params, payloads)
}
