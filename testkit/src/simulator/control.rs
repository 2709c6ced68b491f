//! The control routes (`/sim/...` on the simulator's own listener): what it received and
//! sent back, replies on demand, failures and the throughput limit at run time.

use super::*;

pub(super) fn control_router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/messages", get(list_messages))
        .route("/webhooks", get(list_webhooks))
        .route("/reply", post(reply_route))
        .route(
            "/failures",
            get(list_failures)
                .post(set_failure_route)
                .delete(clear_failures_route),
        )
        .route("/throttled", get(list_throttled))
        .route(
            "/rate_limit",
            get(get_rate_limit).post(set_rate_limit_route),
        )
        .with_state(inner)
}

/// Filter and paging of `GET /messages`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct MessagesQuery {
    tenant: Option<String>,
    campaign: Option<String>,
    phone: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A send as `GET /messages` lists it: the record, with the tenant and campaign its
/// callback data names (absent for a send the engine did not make).
#[derive(Debug, Clone, Serialize)]
pub struct SentView {
    #[serde(flatten)]
    pub record: SentRecord,
    pub tenant: Option<String>,
    pub campaign_id: Option<String>,
}

impl From<&SentRecord> for SentView {
    fn from(r: &SentRecord) -> Self {
        let entry = r
            .callback_data
            .as_deref()
            .and_then(shared::domain::inbound::EntryRef::decode);
        SentView {
            record: r.clone(),
            tenant: entry.as_ref().map(|e| e.tenant.clone()),
            campaign_id: entry.map(|e| e.campaign_id),
        }
    }
}

/// `GET /messages?tenant=&campaign=&phone=&limit=&cursor=`: the sends, oldest first, a
/// page at a time (`{"items": [...], "next_cursor": ..}`).
pub(super) async fn list_messages(
    State(inner): State<Arc<Inner>>,
    shared::http::Query(q): shared::http::Query<MessagesQuery>,
) -> Response {
    let (tenant, campaign) = (q.tenant, q.campaign);
    let phone = q.phone.as_deref().map(digits);
    let sent = inner.state.lock().unwrap().sent.clone();
    let views: Vec<SentView> = sent.iter().map(SentView::from).collect();
    let keep = |v: &SentView| {
        tenant.as_ref().is_none_or(|t| v.tenant.as_ref() == Some(t))
            && campaign
                .as_ref()
                .is_none_or(|c| v.campaign_id.as_ref() == Some(c))
            && phone.as_ref().is_none_or(|p| digits(&v.record.to) == *p)
    };
    match crate::local::page_of(&views, keep, q.limit.as_deref(), q.cursor.as_deref()) {
        Ok((items, next_cursor)) => {
            Json(json!({ "items": items, "next_cursor": next_cursor })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub(super) async fn list_webhooks(State(inner): State<Arc<Inner>>) -> Json<Vec<WebhookRecord>> {
    Json(inner.state.lock().unwrap().webhooks.clone())
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyRequest {
    phone: String,
    text: Option<String>,
    button: Option<String>,
    context_id: Option<String>,
    phone_number_id: Option<String>,
}

pub(super) async fn reply_route(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let req: ReplyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "expected {{\"phone\", \"text\" | \"button\"}}: {e}"
            ))
        }
    };
    let reply = match (req.text, req.button) {
        (Some(t), None) => ReplyKind::Text(t),
        (None, Some(b)) => ReplyKind::Button(b),
        _ => return bad("give exactly one of \"text\" and \"button\"".into()),
    };
    match post_reply(
        &inner,
        &req.phone,
        reply,
        req.context_id.as_deref(),
        req.phone_number_id.as_deref(),
    )
    .await
    {
        Ok(record) => Json(record).into_response(),
        Err(SimError::NoWebhookUrl) => (
            StatusCode::CONFLICT,
            Json(json!({"error": SimError::NoWebhookUrl.to_string()})),
        )
            .into_response(),
        Err(e) => bad(e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct FailureRequest {
    phone: String,
    #[serde(flatten)]
    failure: SimFailure,
}

/// `GET /failures`: the configured failures by number.
pub(super) async fn list_failures(
    State(inner): State<Arc<Inner>>,
) -> Json<BTreeMap<String, SimFailure>> {
    let st = inner.state.lock().unwrap();
    Json(
        st.failures
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// `POST /failures` `{"phone", "kind", "code"?, "kaleyra_code"?, "times"?}`.
pub(super) async fn set_failure_route(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let req: FailureRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "expected {{\"phone\", \"kind\": \"permanent\" | \"temporary\" | \"campaign\", \"code\"?, \"kaleyra_code\"?, \"times\"?}}: {e}"
            ))
        }
    };
    let phone = digits(&req.phone);
    if phone.is_empty() {
        return bad("phone has no digits".into());
    }
    inner
        .state
        .lock()
        .unwrap()
        .failures
        .insert(phone.clone(), req.failure.clone());
    let mut out = serde_json::to_value(&req.failure).expect("failures serialize");
    out["phone"] = Value::String(phone);
    out["meta_code"] = json!(req.failure.meta_code());
    Json(out).into_response()
}

/// `DELETE /failures` (every number) or `DELETE /failures?phone=..` (one).
pub(super) async fn clear_failures_route(
    State(inner): State<Arc<Inner>>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut st = inner.state.lock().unwrap();
    let cleared = match q.get("phone") {
        Some(p) => usize::from(st.failures.remove(&digits(p)).is_some()),
        None => {
            let n = st.failures.len();
            st.failures.clear();
            n
        }
    };
    Json(json!({ "cleared": cleared }))
}

/// `GET /throttled`: the sends refused for the throughput limit.
pub(super) async fn list_throttled(State(inner): State<Arc<Inner>>) -> Json<Vec<ThrottleRecord>> {
    Json(inner.state.lock().unwrap().throttled.clone())
}

/// `GET /rate_limit`: `{"per_second": n | null}`.
pub(super) async fn get_rate_limit(State(inner): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({ "per_second": inner.state.lock().unwrap().rate_limit }))
}

/// `POST /rate_limit` `{"per_second": n | null}` (null lifts the limit).
pub(super) async fn set_rate_limit_route(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let given = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("per_second").cloned());
    let parsed = match given {
        Some(Value::Null) => Some(None),
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some),
        None => None,
    };
    let Some(per_second) = parsed else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected {\"per_second\": n | null}"})),
        )
            .into_response();
    };
    inner.state.lock().unwrap().rate_limit = per_second;
    Json(json!({ "per_second": per_second })).into_response()
}
