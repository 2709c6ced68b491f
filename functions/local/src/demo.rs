//! A demo campaign played over the local HTTP API, with a live progress line (R8.4).

use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CONTACTS: usize = 200;

/// The local API as tenant `demo` sees it.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub(crate) fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// `path` answered with a success status; its JSON.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-tenant-id", "demo");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path} answered {status}: {v}");
        Ok(v)
    }
    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

fn line(s: &Value) -> String {
    let n = |k: &str| s[k].as_i64().unwrap_or(0);
    format!(
        "target {:>4} | sent {:>4} | delivered {:>4} | read {:>4} | replied {:>4} | failed {:>3} | no response {:>4}",
        n("target"),
        n("sent"),
        n("delivered"),
        n("read"),
        n("replied"),
        n("failed"),
        n("no_response")
    )
}

pub async fn play(base: &str) -> anyhow::Result<()> {
    let api = Api::new(base);
    println!("\nDemo: a spring offer to {CONTACTS} contacts at 20 messages/s through the WhatsApp simulator");
    let account = api
        .post("/accounts", json!({"name": "Demo number", "sender_id": "106540352242922", "token_ref": "secretsmanager:campaigns/demo/meta-token", "waba_id": "100000000000001"}))
        .await?;
    let account_id = account["id"].as_str().unwrap_or_default().to_owned();
    api.post("/templates", json!({
        "account_id": account_id, "name": "spring_offer", "language": "en", "category": "MARKETING",
        "body": "Hi {{1}}, spring sale: 20% off with code {{2}}. Interested?", "quick_replies": ["Yes", "No"]
    })).await?;
    let phones: Vec<String> = (0..CONTACTS).map(|i| format!("91981230{i:04}")).collect();
    let contacts: Vec<Value> = phones
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"phone": format!("+{p}"), "name": format!("Customer {i}"), "fields": {"code": format!("SPRING{i:03}")}}))
        .collect();
    api.post("/contacts", Value::Array(contacts)).await?;
    let list = api.post("/lists", json!({"name": "Spring VIPs"})).await?;
    let list_id = list["id"].as_str().unwrap_or_default().to_owned();
    api.post(
        &format!("/lists/{list_id}/members"),
        json!({"phones": phones}),
    )
    .await?;
    let campaign = api
        .post(
            "/campaigns",
            json!({
                "name": "Spring offer", "account_id": account_id,
                "template": {"name": "spring_offer", "language": "en"},
                "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}],
                "rate": 20, "response_timeout_days": 1
            }),
        )
        .await?;
    let id = campaign["id"].as_str().unwrap_or_default().to_owned();
    api.post(
        &format!("/campaigns/{id}/lists"),
        json!({"list_id": list_id}),
    )
    .await?;
    api.post(&format!("/campaigns/{id}/launch"), json!({}))
        .await?;
    println!("Campaign {id} launched; watch it at {base}/campaigns/{id}/stats\n");

    let started = Instant::now();
    let mut timed_out = false;
    let mut shown = String::new();
    loop {
        let s = api.get(&format!("/campaigns/{id}/stats")).await?;
        if line(&s) != shown {
            shown = line(&s);
            println!("{shown}");
        }
        let n = |k: &str| s[k].as_i64().unwrap_or(0);
        let settled =
            n("sent") + n("failed") >= n("target") && n("read") + n("failed") >= n("sent");
        if settled && !timed_out && started.elapsed() > Duration::from_secs(3) {
            // Let the last replies arrive, then skip a day so non-responders time out.
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!("\nAll messages read; advancing the local clock by one day to time out the non-responders...");
            api.post("/local/clock/advance", json!({"days": 1, "minutes": 1}))
                .await?;
            timed_out = true;
        }
        let c = api.get(&format!("/campaigns/{id}")).await?;
        if c["status"] == "COMPLETED" {
            let s = api.get(&format!("/campaigns/{id}/stats")).await?;
            println!("{}", line(&s));
            println!(
                "\nCampaign COMPLETED in {:.1}s: delivered {}% of sent, read {}% of delivered, replied {}% of delivered.",
                started.elapsed().as_secs_f64(),
                s["delivered_pct"],
                s["read_pct"],
                s["replied_pct"]
            );
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "demo did not complete within two minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
