//! Amazon Connect's `StartOutboundVoiceContact` as the SDK speaks it (restJson1, `PUT
//! /contact/outbound-voice`, SigV4-signed for `connect`) and the contact events a call
//! then produces, as an EventBridge rule delivers them to the inbound queue.
//!
//! As strict as Connect where the engine can go wrong: `InstanceId` one of
//! [`SIM_CONNECT_INSTANCE_IDS`], `ContactFlowId` present, `DestinationPhoneNumber` and
//! `SourcePhoneNumber` in E.164, `ClientToken` at most 500 characters, attribute keys of
//! letters, digits, `-` and `_`, and answering-machine detection only with `TrafficType`
//! `CAMPAIGN`. A `ClientToken` seen before answers the contact it started, and nothing is
//! dialled again (Connect keeps tokens 7 days). Refusals answer as Connect does: the
//! exception in `x-amzn-ErrorType` and `{"message": ..}`.
//!
//! A started call plays out on the simulator's clock: what the callee does comes from
//! [`SimConfig::call_outcomes`] (by number) or else from the number's hash over
//! [`SimConfig::call_mix`]; `INITIATED` at once, `CONNECTED_TO_SYSTEM` when answered
//! (with the answering-machine result when detection is on), `DISCONNECTED` when it ends:
//! after [`SimConfig::call_seconds`] of talk, after the 60 s dialling timeout when nobody
//! answers, at once for busy and invalid numbers. [`Simulator::play_calls`] publishes the
//! events due by the clock (the local runner does so every 200 ms); numbers in
//! [`SimConfig::call_final_lost`] never get their final event. Connect's own limit of
//! concurrent calls per instance is [`SimConfig::connect_concurrent_limit`]: a start beyond
//! it answers `LimitExceededException`.

use super::aws_sms::e164;
use super::*;

/// The Connect instances the simulated AWS account has.
pub const SIM_CONNECT_INSTANCE_IDS: [&str; 2] = [
    "11111111-2222-4333-8444-000000000001",
    "11111111-2222-4333-8444-000000000002",
];
/// The numbers claimed on the simulated instances (caller ids).
pub const SIM_CONNECT_CALLER_IDS: [&str; 2] = ["+15550100100", "+15550100200"];
/// The simulated AWS account.
const ACCOUNT: &str = "111122223333";
/// Connect's dialling timeout: a call not answered within it fails.
pub const DIAL_TIMEOUT_SECS: i64 = 60;

/// What the callee's side does with a simulated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimCallOutcome {
    /// A person answers and talks.
    Human,
    /// A voicemail greeting answers, then its beep.
    Voicemail,
    /// It rings until Connect's 60 s timeout.
    NoAnswer,
    /// The line is busy.
    Busy,
    /// The network says the number does not exist.
    InvalidNumber,
    /// A fax answers.
    Fax,
}

/// A call the simulator started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub contact_id: String,
    pub instance_id: String,
    /// `DestinationPhoneNumber` as sent.
    pub to: String,
    pub caller_id: String,
    pub contact_flow_id: String,
    pub queue_id: Option<String>,
    pub client_token: String,
    pub attributes: BTreeMap<String, String>,
    /// Answering-machine detection asked for, and whether to await the beep.
    pub amd: Option<bool>,
    pub traffic_type: String,
    pub outcome: SimCallOutcome,
    pub started_at: Time,
    /// When its `DISCONNECTED` is due.
    pub ends_at: Time,
    /// Events of the call published so far.
    pub published: usize,
}

impl CallRecord {
    /// Whether the call is in progress at `t`.
    pub fn live_at(&self, t: Time) -> bool {
        self.started_at <= t && t < self.ends_at
    }
}

fn connect_error(status: StatusCode, name: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-ErrorType", name)],
        Json(json!({ "message": message })),
    )
        .into_response()
}

/// What the callee of `phone` does.
pub(super) fn outcome_for(cfg: &SimConfig, phone: &str) -> SimCallOutcome {
    if let Some(o) = cfg.call_outcomes.get(phone) {
        return *o;
    }
    let total: u64 = cfg.call_mix.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return SimCallOutcome::Human;
    }
    let mut pick = stable_hash(&format!("call:{phone}")) % total;
    for (o, w) in &cfg.call_mix {
        if pick < u64::from(*w) {
            return *o;
        }
        pick -= u64::from(*w);
    }
    SimCallOutcome::Human
}

/// `PUT /contact/outbound-voice`.
pub(super) async fn start_outbound_voice_contact(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !(auth.starts_with("AWS4-HMAC-SHA256 Credential=") && auth.contains("/connect/aws4_request"))
    {
        return connect_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Missing Authentication Token",
        );
    }
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return connect_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestException",
            "the request body is not JSON",
        );
    };
    let field = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default();
    let invalid = |what: &str| {
        connect_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            &format!("1 validation error detected: Value at '{what}' failed to satisfy constraint"),
        )
    };
    let (to, from, instance, flow, token) = (
        field("DestinationPhoneNumber"),
        field("SourcePhoneNumber"),
        field("InstanceId"),
        field("ContactFlowId"),
        field("ClientToken"),
    );
    if !e164(to) {
        return invalid("destinationPhoneNumber");
    }
    if !from.is_empty() && !e164(from) {
        return invalid("sourcePhoneNumber");
    }
    if flow.is_empty() || flow.len() > 500 {
        return invalid("contactFlowId");
    }
    if token.len() > 500 {
        return invalid("clientToken");
    }
    let attributes: BTreeMap<String, String> = match input.get("Attributes") {
        None => BTreeMap::new(),
        Some(a) => match serde_json::from_value(a.clone()) {
            Ok(a) => a,
            Err(_) => return invalid("attributes"),
        },
    };
    let key_ok = |k: &String| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !attributes.keys().all(key_ok) {
        return invalid("attributes");
    }
    let amd = input.get("AnswerMachineDetectionConfig");
    let amd_on = amd
        .and_then(|a| a.get("EnableAnswerMachineDetection"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let traffic = match field("TrafficType") {
        "" => "GENERAL",
        t => t,
    };
    if !matches!(traffic, "GENERAL" | "CAMPAIGN") {
        return invalid("trafficType");
    }
    if amd_on && traffic != "CAMPAIGN" {
        return connect_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestException",
            "answering machine detection needs TrafficType CAMPAIGN",
        );
    }
    if !SIM_CONNECT_INSTANCE_IDS.contains(&instance) {
        return connect_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("instance {instance} not found"),
        );
    }
    if !from.is_empty() && !SIM_CONNECT_CALLER_IDS.contains(&from) {
        return connect_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "the source phone number is not claimed on the instance",
        );
    }
    // The same token: the contact it started, nothing dialled again.
    let now = inner.clock.now();
    let phone = digits(to);
    {
        let mut st = inner.state.lock().unwrap();
        if let Some(n) = st.connect_throttles.get_mut(&phone).filter(|n| **n > 0) {
            *n -= 1;
            return connect_error(
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceededException",
                "Rate exceeded",
            );
        }
        if !token.is_empty() {
            if let Some(id) = st.connect_tokens.get(&format!("{instance}|{token}")) {
                let id = id.clone();
                st.connect_token_replays += 1;
                return Json(json!({ "ContactId": id })).into_response();
            }
        }
        if let Some(limit) = inner.cfg.connect_concurrent_limit {
            let live = st
                .calls
                .iter()
                .filter(|c| c.instance_id == instance && c.live_at(now))
                .count();
            if live >= limit as usize {
                return connect_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "LimitExceededException",
                    "the limit of concurrent calls of the instance is reached",
                );
            }
        }
    }
    let admission = admit(&inner, SimProvider::Connect, instance, to, None);
    super::send_api::provider_latency(&inner).await;
    match admission {
        Admission::Accept => {}
        Admission::Throttle(_) => {
            return connect_error(
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceededException",
                "Rate exceeded",
            )
        }
        Admission::Fail(f) => {
            return match f.kind {
                SimFailureKind::Permanent => connect_error(
                    StatusCode::FORBIDDEN,
                    "DestinationNotAllowedException",
                    "outbound calls to this destination are not allowed",
                ),
                SimFailureKind::Temporary => connect_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "LimitExceededException",
                    "Rate exceeded",
                ),
                SimFailureKind::Campaign => connect_error(
                    StatusCode::FORBIDDEN,
                    "OutboundContactNotPermittedException",
                    "outbound calls are not permitted on this instance",
                ),
            }
        }
    }
    let outcome = outcome_for(&inner.cfg, &phone);
    let n = inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let contact_id = format!("00000000-0000-4000-8000-{n:012}");
    let ring = chrono::Duration::seconds(inner.cfg.ring_seconds);
    let ends_at = now
        + match outcome {
            SimCallOutcome::Human | SimCallOutcome::Voicemail => {
                ring + chrono::Duration::seconds(inner.cfg.call_seconds)
            }
            SimCallOutcome::NoAnswer => chrono::Duration::seconds(DIAL_TIMEOUT_SECS),
            SimCallOutcome::Busy | SimCallOutcome::InvalidNumber => chrono::Duration::seconds(2),
            SimCallOutcome::Fax => ring + chrono::Duration::seconds(5),
        };
    let record = CallRecord {
        contact_id: contact_id.clone(),
        instance_id: instance.to_owned(),
        to: to.to_owned(),
        caller_id: from.to_owned(),
        contact_flow_id: flow.to_owned(),
        queue_id: Some(field("QueueId").to_owned()).filter(|q| !q.is_empty()),
        client_token: token.to_owned(),
        attributes,
        amd: amd_on.then(|| {
            amd.and_then(|a| a.get("AwaitAnswerMachinePrompt"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        }),
        traffic_type: traffic.to_owned(),
        outcome,
        started_at: now,
        ends_at,
        published: 0,
    };
    let (lost_answer, refused) = {
        let mut st = inner.state.lock().unwrap();
        if !token.is_empty() {
            st.connect_tokens
                .insert(format!("{instance}|{token}"), contact_id.clone());
        }
        st.calls.push(record);
        (
            st.connect_lost_answers.remove(&phone),
            st.connect_started_refused.remove(&phone),
        )
    };
    if refused {
        // Started, and a refusal answered: what a client hears when the answer of its
        // first try was lost and a retry of it was refused.
        return connect_error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "Rate exceeded",
        );
    }
    if lost_answer {
        // Started, and the answer lost on the way: the client tries again.
        return connect_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServiceException",
            "Request processing failed",
        );
    }
    Json(json!({ "ContactId": contact_id })).into_response()
}

/// A contact event of `call` as EventBridge delivers it.
fn contact_event(call: &CallRecord, kind: &str, at: Time, cfg: &SimConfig) -> Value {
    let ts = |t: Time| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let answered = matches!(
        call.outcome,
        SimCallOutcome::Human | SimCallOutcome::Voicemail | SimCallOutcome::Fax
    );
    let connected_at = call.started_at + chrono::Duration::seconds(cfg.ring_seconds);
    let instance_arn = format!(
        "arn:aws:connect:us-east-1:{ACCOUNT}:instance/{}",
        call.instance_id
    );
    let mut detail = json!({
        "eventType": kind,
        "contactId": call.contact_id,
        "initialContactId": call.contact_id,
        "channel": "VOICE",
        "instanceArn": instance_arn,
        "initiationMethod": "API",
        "initiationTimestamp": ts(call.started_at),
        "tags": {"aws:connect:instanceId": call.instance_id, "aws:connect:systemEndpoint": call.caller_id},
    });
    if answered && at >= connected_at {
        detail["connectedToSystemTimestamp"] = json!(ts(connected_at));
    }
    if call.amd.is_some() && kind == "CONNECTED_TO_SYSTEM" {
        let status = match call.outcome {
            SimCallOutcome::Human => "HUMAN_ANSWERED",
            SimCallOutcome::Voicemail => "VOICEMAIL_BEEP",
            SimCallOutcome::NoAnswer => "AMD_UNANSWERED",
            SimCallOutcome::Busy => "SIT_TONE_BUSY",
            SimCallOutcome::InvalidNumber => "SIT_TONE_INVALID_NUMBER",
            SimCallOutcome::Fax => "FAX_MACHINE_DETECTED",
        };
        detail["answeringMachineDetectionStatus"] = json!(status);
    }
    if kind == "DISCONNECTED" {
        detail["disconnectTimestamp"] = json!(ts(at));
        detail["disconnectReason"] = json!(match call.outcome {
            SimCallOutcome::Human | SimCallOutcome::Voicemail | SimCallOutcome::Fax =>
                "CUSTOMER_DISCONNECT",
            SimCallOutcome::NoAnswer => "TELECOM_TIMEOUT",
            SimCallOutcome::Busy => "TELECOM_BUSY",
            SimCallOutcome::InvalidNumber => "TELECOM_NUMBER_INVALID",
        });
    }
    json!({
        "version": "0",
        "id": format!("sim-event-{}-{kind}", call.contact_id),
        "detail-type": shared::providers::connect::EVENT_DETAIL_TYPE,
        "source": shared::providers::connect::EVENT_SOURCE,
        "account": ACCOUNT,
        "time": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": "us-east-1",
        "resources": [format!("{instance_arn}/contact/{}", call.contact_id), instance_arn],
        "detail": detail,
    })
}

/// The events of `call` in order, each with when it is due: `INITIATED`; then
/// `CONNECTED_TO_SYSTEM` when something answered or detection has a result; then
/// `DISCONNECTED` (unless its final event is lost).
fn schedule(call: &CallRecord, cfg: &SimConfig) -> Vec<(&'static str, Time)> {
    let mut events = vec![("INITIATED", call.started_at)];
    let answered = matches!(
        call.outcome,
        SimCallOutcome::Human | SimCallOutcome::Voicemail | SimCallOutcome::Fax
    );
    if answered || call.amd.is_some() {
        let at = if answered {
            call.started_at + chrono::Duration::seconds(cfg.ring_seconds)
        } else {
            call.ends_at
        };
        events.push(("CONNECTED_TO_SYSTEM", at.min(call.ends_at)));
    }
    if !cfg.call_final_lost.contains(&digits(&call.to)) {
        events.push(("DISCONNECTED", call.ends_at));
    }
    events
}

impl Simulator {
    /// Calls started so far, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.inner.state.lock().unwrap().calls.clone()
    }

    /// How many starts named a client token seen before (answered with its contact,
    /// nothing dialled).
    pub fn call_token_replays(&self) -> usize {
        self.inner.state.lock().unwrap().connect_token_replays
    }

    /// The most calls in progress at once on `instance` so far (of those matching
    /// `campaign`'s `campaign_id` attribute, when given), by the simulator's clock.
    pub fn most_calls_at_once(&self, instance: &str, campaign: Option<&str>) -> usize {
        let calls: Vec<CallRecord> = self
            .calls()
            .into_iter()
            .filter(|c| c.instance_id == instance)
            .filter(|c| {
                campaign.is_none_or(|id| {
                    c.attributes.get("campaign_id").map(String::as_str) == Some(id)
                })
            })
            .collect();
        calls
            .iter()
            .map(|c| calls.iter().filter(|o| o.live_at(c.started_at)).count())
            .max()
            .unwrap_or(0)
    }

    /// The next start of a call to `phone` starts it and then answers
    /// `InternalServiceException`, as if the answer were lost.
    pub fn lose_call_answer(&self, phone: &str) {
        self.inner
            .state
            .lock()
            .unwrap()
            .connect_lost_answers
            .insert(digits(phone));
    }

    /// The next call to `phone` is started but answered `LimitExceededException`, and so
    /// are the `retries` starts after it: the client hears "too many calls" although the
    /// call rings.
    pub fn start_call_and_refuse(&self, phone: &str, retries: u32) {
        let mut st = self.inner.state.lock().unwrap();
        st.connect_started_refused.insert(digits(phone));
        st.connect_throttles.insert(digits(phone), retries);
    }

    /// The next `times` starts of calls to `phone` answer `LimitExceededException` (before
    /// anything else is looked at).
    pub fn throttle_calls(&self, phone: &str, times: u32) {
        self.inner
            .state
            .lock()
            .unwrap()
            .connect_throttles
            .insert(digits(phone), times);
    }

    /// Publishes every contact event due by the clock, oldest first, on the AWS event
    /// sink; how many.
    pub async fn play_calls(&self) -> usize {
        play_calls(&self.inner).await
    }
}

pub(super) async fn play_calls(inner: &Inner) -> usize {
    let now = inner.clock.now();
    let due: Vec<(usize, Value)> = {
        let mut st = inner.state.lock().unwrap();
        let mut due = Vec::new();
        for (i, call) in st.calls.iter_mut().enumerate() {
            let events = schedule(call, &inner.cfg);
            while call.published < events.len() && events[call.published].1 <= now {
                let (kind, at) = events[call.published];
                due.push((i, contact_event(call, kind, at, &inner.cfg)));
                call.published += 1;
            }
        }
        due
    };
    let sink = inner.aws_sink.lock().unwrap().clone();
    let n = due.len();
    for (_, event) in due {
        let contact = event
            .pointer("/detail/contactId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let body = event.to_string();
        let (answered, error) = match &sink {
            None => (None, Some("no AWS event sink".to_owned())),
            Some(s) => match s.publish(body.clone()).await {
                Ok(()) => (Some(200), None),
                Err(e) => (None, Some(e)),
            },
        };
        inner.state.lock().unwrap().webhooks.push(WebhookRecord {
            kind: WebhookKind::CallEvent,
            message_id: contact,
            phone: String::new(),
            body,
            answered,
            error,
            at: now,
        });
    }
    n
}
