//! Example values shared by the path descriptions of the OpenAPI document.

use serde_json::{json, Value};

pub const CAMPAIGN_ID: &str = "cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8";

pub fn new_campaign() -> Value {
    json!({
        "name": "Spring offer",
        "account_id": "acc_0193a6ef11aa7c3e9d8b2f4a6c1e0d57",
        "template": {"name": "spring_offer", "language": "en"},
        "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}],
        "pacing": {"unit": "messages_per_second", "value": 20},
        "response_timeout_days": 2,
        "duplicate_window_days": 3,
        "close_on_quick_reply": true,
        "start_at": "2026-11-22T09:00:00Z",
        "end_at": "2026-11-29T21:00:00Z",
        "calling_hours": {"start": "09:00", "end": "20:00", "timezone": "Asia/Kolkata"},
        "reply_route": "queue:spring-sales",
        "block_lists": ["bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f"],
        "notes": "Spring catalogue, VIP list first"
    })
}

pub fn campaign_view(status: &str) -> Value {
    let (sent, target) = match status {
        "DRAFT" | "READY" | "SCHEDULED" => (0, 1200),
        "COMPLETED" => (1200, 1200),
        _ => (480, 1200),
    };
    let v = json!({
        "id": CAMPAIGN_ID,
        "tenant": "acme",
        "name": "Spring offer",
        "channel": "whatsapp",
        "account_id": "acc_0193a6ef11aa7c3e9d8b2f4a6c1e0d57",
        "template": {"name": "spring_offer", "language": "en"},
        "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}],
        "notes": "Spring catalogue, VIP list first",
        "pacing": {"unit": "messages_per_second", "value": 20},
        "response_timeout_days": 2,
        "duplicate_window_days": 3,
        "include_active_interactions": false,
        "close_on_quick_reply": true,
        "start_at": "2026-11-22T09:00:00Z",
        "end_at": "2026-11-29T21:00:00Z",
        "calling_hours": {"start": "09:00", "end": "20:00", "timezone": "Asia/Kolkata"},
        "display_timezone": "Asia/Kolkata",
        "reply_route": "queue:spring-sales",
        "block_lists": ["bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f"],
        "status": status,
        "hopper_shards": 16,
        "created_at": "2026-11-21T09:00:00Z",
        "updated_at": "2026-11-21T09:05:00Z",
        "version": 4,
        "progress": {"sent": sent, "target": target, "percent": (sent as f64 * 1000.0 / target as f64).round() / 10.0}
    });
    with_actions(v)
}

/// The campaign's `actions` as the domain judges them (at the example's update time).
fn with_actions(mut v: Value) -> Value {
    let c: crate::domain::campaign::Campaign =
        serde_json::from_value(v.clone()).expect("the example is a campaign");
    v["actions"] = json!(c.actions(c.updated_at));
    v
}

pub fn test_view() -> Value {
    let mut v = campaign_view("RUNNING");
    v["id"] = json!("cmp_0193a6f5d1e2a3b4c5d6e7f8091a2b3c");
    v["name"] = json!("Spring offer (test)");
    v["test_of"] = json!(CAMPAIGN_ID);
    v["start_at"] = Value::Null;
    v["end_at"] = Value::Null;
    v["progress"] = json!({"sent": 0, "target": 2, "percent": 0.0});
    with_actions(v)
}

pub fn tenant(enabled: bool) -> Value {
    json!({"id": "acme", "campaigns_enabled": enabled, "timezone": "Asia/Kolkata", "opt_out_keywords": ["STOP", "STOPALL", "UNSUBSCRIBE", "STOP PROMOTIONS"], "updated_at": "2026-11-21T09:00:00Z", "version": 2})
}

pub fn not_found() -> Value {
    json!({"error": "not_found", "message": format!("campaign '{CAMPAIGN_ID}' not found")})
}

pub fn forbidden() -> Value {
    json!({"error": "forbidden", "message": "campaigns are disabled for tenant acme; the platform's administrator can enable them (PUT /admin/tenants/acme)"})
}

/// A background operation (a reset or retry, R4.9; an attach; a report's walk) and its
/// progress.
pub fn operation(kind: &str, status: &str, campaign_status: &str) -> Value {
    let done = status == "DONE";
    json!({
        "id": "op_0193a7b2c4d5e6f708192a3b4c5d6e7f",
        "campaign_id": CAMPAIGN_ID,
        "kind": kind,
        "status": status,
        "campaign_status": campaign_status,
        "requests": 1,
        "requested_at": "2026-11-23T10:00:00Z",
        "updated_at": if done { "2026-11-23T10:02:00Z" } else { "2026-11-23T10:00:00Z" },
        "finished_at": if done { json!("2026-11-23T10:02:00Z") } else { Value::Null },
        "progress": {
            "shards_done": if done { 16 } else { 0 }, "shards": 16,
            "examined": if done { 1200 } else { 0 }, "changed": if done { 37 } else { 0 },
            "in_flight": 0, "already_present": 0,
            "sources_left": if kind == "attach" && !done { 1 } else { 0 },
            "percent": if done { 100.0 } else { 0.0 }
        },
        "message": null,
        "result": null
    })
}

pub fn conflict(action: &str, status: &str) -> Value {
    json!({"error": "conflict", "message": format!("cannot {action} campaign {CAMPAIGN_ID} while it is {status}")})
}
