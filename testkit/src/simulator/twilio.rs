//! Twilio Programmable Messaging, as strictly as Twilio answers it:
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, Basic auth of
//! the account SID and [`SimConfig::twilio_auth_token`]; `To` in E.164, exactly one of
//! `From` and `MessagingServiceSid`, a `Body` of at most 1,600 characters, an absolute
//! `StatusCallback`. It answers 201 with Twilio's message resource (`sid` `SM...`,
//! `status` `queued`, `num_segments`) or Twilio's error JSON (`code`, `message`,
//! `more_info`, `status`), then posts signed status callbacks (`sent`, `delivered`, or
//! `undelivered` with an `ErrorCode`) to the `StatusCallback`, and for a share of the
//! contacts ([`SimConfig::reply_percent`]) an inbound SMS to the same path without its
//! query (the account's inbound URL). A contact that texts STOP is opted out: later sends
//! to it answer `21610`, as Twilio's own opt-out handling does.

use super::*;
use shared::domain::sms;
use shared::providers::twilio;

/// Twilio's opt-out keywords (its default Advanced Opt-Out list).
const STOP_WORDS: [&str; 7] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
];

fn twilio_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let v = headers.get("authorization")?.to_str().ok()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.strip_prefix("Basic ")?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

fn e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The simulated message sid of send `n`: `SM` and 32 hex digits.
fn message_sid(n: u64) -> String {
    format!("SM{n:032x}")
}

pub(super) async fn twilio_send(
    State(inner): State<Arc<Inner>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorised = basic_auth(&headers)
        .is_some_and(|(u, p)| u == account_sid && p == inner.cfg.twilio_auth_token);
    if !authorised {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let params = twilio::form_params(&body);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(to) = get("To").filter(|t| e164(t)) else {
        let to = get("To").unwrap_or_default();
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    };
    let from = match (get("From"), get("MessagingServiceSid")) {
        (Some(f), None) if e164(&f) => f,
        (None, Some(s)) if s.starts_with("MG") && s.len() == 34 => s,
        (Some(_), Some(_)) | (None, None) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21603,
                "A 'From' phone number or a MessagingServiceSid is required, not both.",
            )
        }
        (Some(f), None) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21212,
                &format!("The 'From' number {f} is not a valid phone number."),
            )
        }
        (None, Some(s)) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21704,
                &format!("The Messaging Service Sid {s} is invalid."),
            )
        }
    };
    let Some(text) = get("Body").filter(|b| !b.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    if text.chars().count() > twilio::MAX_BODY_CHARS {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let callback = get("StatusCallback");
    if callback.as_deref().is_some_and(|c| {
        reqwest::Url::parse(c).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
    }) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21609,
            "The StatusCallback URL is not a valid URL.",
        );
    }
    let phone = digits(&to);
    let opted_out = inner
        .state
        .lock()
        .unwrap()
        .twilio_opted_out
        .contains(&phone);
    if opted_out {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            shared::domain::outcome::TWILIO_OPTED_OUT_CODE,
            "Attempt to send to unsubscribed recipient",
        );
    }
    let sender = format!("{account_sid}:{from}");
    let admission = admit(&inner, SimProvider::Twilio, &sender, &to, None);
    provider_latency(&inner).await;
    match admission {
        Admission::Accept => {}
        Admission::Throttle(_) => {
            return twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
        }
        Admission::Fail(f) => {
            let (status, code, message) = match f.kind {
                SimFailureKind::Permanent => (
                    StatusCode::BAD_REQUEST,
                    21614,
                    "'To' number is not a valid mobile number",
                ),
                // The number's queue is full: nothing was taken, try later.
                SimFailureKind::Temporary => (
                    StatusCode::BAD_REQUEST,
                    21611,
                    "This 'From' number has exceeded the maximum number of queued messages",
                ),
                SimFailureKind::Campaign => (StatusCode::UNAUTHORIZED, 20003, "Authenticate"),
            };
            return twilio_error(status, f.code.unwrap_or(code), message);
        }
    }
    let n = inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let sid = message_sid(n);
    let callback_data = callback.as_deref().and_then(|c| {
        let u = reqwest::Url::parse(c).ok()?;
        let r = u.query_pairs().find(|(k, _)| k == twilio::REF_PARAM)?;
        Some(r.1.into_owned())
    });
    let record = SentRecord {
        wamid: sid.clone(),
        provider: SimProvider::Twilio,
        version: "2010-04-01".into(),
        phone_number_id: sender,
        to: to.clone(),
        template: String::new(),
        language: None,
        params: vec![text.clone()],
        quick_reply_payloads: Vec::new(),
        url_suffix: None,
        callback_data,
        marketing_messages: false,
        options: BTreeMap::new(),
        at: inner.clock.now(),
    };
    {
        let mut st = inner.state.lock().unwrap();
        st.sent.push(record.clone());
        if let Some(c) = &callback {
            let inbound = c.split('?').next().unwrap_or(c).to_owned();
            st.twilio_inbound
                .insert(record.phone_number_id.clone(), inbound);
        }
    }
    if let Some(url) = callback.clone() {
        let guard = PendingGuard::new(&inner);
        let (account_sid, from) = (account_sid.clone(), from.clone());
        tokio::spawn(async move {
            twilio_status_flow(&guard.0, &record, &account_sid, &from, &url).await;
            drop(guard);
        });
    }
    let segments = sms::parts(&text).segments;
    (
        StatusCode::CREATED,
        Json(json!({
            "sid": sid,
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "to": to,
            "from": from,
            "body": text,
            "status": "queued",
            "num_segments": segments.to_string(),
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"),
        })),
    )
        .into_response()
}

/// Posts a signed form callback to `url` and records it.
async fn post_signed(
    inner: &Inner,
    url: &str,
    params: Vec<(String, String)>,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
) -> WebhookRecord {
    let sig = twilio::signature(&inner.cfg.twilio_auth_token, url, &params);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    let res = inner
        .http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(twilio::SIGNATURE_HEADER, sig)
        .body(body.clone())
        .send()
        .await;
    let (answered, error) = match res {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            (Some(status), None)
        }
        Err(e) => (None, Some(e.to_string())),
    };
    let record = WebhookRecord {
        kind,
        message_id: message_id.to_owned(),
        phone: phone.to_owned(),
        body,
        answered,
        error,
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().webhooks.push(record.clone());
    record
}

fn p(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// `sent` then `delivered` (or `undelivered` for a number configured to fail on
/// delivery), then, for a share of the contacts, an inbound reply.
async fn twilio_status_flow(
    inner: &Arc<Inner>,
    sent: &SentRecord,
    account_sid: &str,
    from: &str,
    url: &str,
) {
    let phone = digits(&sent.to);
    for status in ["sent", "delivered"] {
        pause(inner).await;
        let mut params = vec![
            p("AccountSid", account_sid),
            p("ApiVersion", "2010-04-01"),
            p("From", from),
            p("MessageSid", &sent.wamid),
            p("MessageStatus", status),
            p("SmsSid", &sent.wamid),
            p("SmsStatus", status),
            p("To", &sent.to),
        ];
        let kind = match status {
            "sent" => WebhookKind::Sent,
            _ => WebhookKind::Delivered,
        };
        let undeliverable = (status == "delivered")
            .then(|| {
                inner
                    .cfg
                    .twilio_undelivered
                    .iter()
                    .find(|(n, _)| *n == phone)
            })
            .flatten();
        if let Some((_, code)) = undeliverable {
            params[4].1 = "undelivered".into();
            params[6].1 = "undelivered".into();
            params.push(p("ErrorCode", &code.to_string()));
        }
        post_signed(inner, url, params, kind, &sent.wamid, &phone).await;
        if undeliverable.is_some() {
            return;
        }
    }
    if will_reply(&phone, inner.cfg.reply_percent) {
        pause(inner).await;
        let inbound = url.split('?').next().unwrap_or(url).to_owned();
        let text = inner.cfg.reply_text.clone();
        twilio_inbound(inner, &inbound, account_sid, from, &sent.to, &text).await;
    }
}

/// An SMS from `contact` to the business number `to`, posted signed to `url`; a STOP
/// word opts the contact out of the simulated number, as Twilio does.
pub(super) async fn twilio_inbound(
    inner: &Inner,
    url: &str,
    account_sid: &str,
    business: &str,
    contact: &str,
    text: &str,
) -> WebhookRecord {
    let phone = digits(contact);
    if STOP_WORDS.contains(&text.trim().to_ascii_uppercase().as_str()) {
        inner
            .state
            .lock()
            .unwrap()
            .twilio_opted_out
            .insert(phone.clone());
    }
    let n = inner.in_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let sid = format!("SM{:032x}", (1u128 << 100) + u128::from(n));
    let params = vec![
        p("AccountSid", account_sid),
        p("ApiVersion", "2010-04-01"),
        p("Body", text),
        p("From", &format!("+{phone}")),
        p("MessageSid", &sid),
        p("NumMedia", "0"),
        p("NumSegments", &sms::parts(text).segments.to_string()),
        p("SmsMessageSid", &sid),
        p("SmsSid", &sid),
        p("SmsStatus", "received"),
        p("To", business),
    ];
    post_signed(inner, url, params, WebhookKind::ReplyText, &sid, &phone).await
}

impl Simulator {
    /// The contact `phone` texts `text` to the Twilio number its last SMS came from, at
    /// that account's inbound URL; `None` when no SMS went to it with a status callback.
    pub async fn twilio_reply(&self, phone: &str, text: &str) -> Option<WebhookRecord> {
        let phone = digits(phone);
        let last = {
            let st = self.inner.state.lock().unwrap();
            st.sent
                .iter()
                .rev()
                .find(|s| s.provider == SimProvider::Twilio && digits(&s.to) == phone)
                .cloned()
        }?;
        let url = {
            let st = self.inner.state.lock().unwrap();
            st.twilio_inbound.get(&last.phone_number_id).cloned()
        }?;
        let (account_sid, from) = last.phone_number_id.split_once(':')?;
        let to = last.to.clone();
        Some(twilio_inbound(&self.inner, &url, account_sid, from, &to, text).await)
    }
}
