//! R2.4: CSV import, inline and through an upload to object storage that the importer
//! streams, checkpoints and continues; on the in-memory adapters and on DynamoDB + S3 in
//! the local emulator (a real PUT to the presigned URL).

use testkit::harness as common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::Utc;
use serde_json::{json, Value};
use shared::adapters::aws::{s3, DynamoTable};
use shared::app::import::{ImportService, ImportTuning, ImporterEvent, RunOutcome};
use shared::domain::import::ImportStatus;
use shared::domain::phone::PhoneNumber;
use shared::ports::{ObjectStore, Table};
use shared::repo;
use std::sync::Arc;
use std::time::Duration;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::memory_objects::MemoryObjects;

struct Env {
    s: Spawned,
    objects: Arc<dyn ObjectStore>,
}

impl std::ops::Deref for Env {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.s
    }
}

fn env_on(table: Arc<dyn Table>, objects: Arc<dyn ObjectStore>) -> Env {
    Env {
        s: Spawn::new(table).objects(objects.clone()).build(),
        objects,
    }
}

fn memory_env() -> Env {
    env_on(
        Arc::new(MemoryTable::new()),
        // Odd small chunks split rows (and UTF-8 characters) across chunk boundaries.
        Arc::new(MemoryObjects::new("http://127.0.0.1:3000").with_chunk_size(7)),
    )
}

const WHAT: &str = "DynamoDB/S3 import";

async fn aws_env() -> (Env, Arc<s3::S3Objects>) {
    let conf = common::emulator_config(WHAT).await;
    let name = common::unique_name("import");
    let ddb = common::create_table(&conf, &name).await;
    let s3c = s3::client(&conf);
    s3::ensure_bucket(&s3c, &name).await.expect("bucket");
    s3::ensure_bucket(&s3c, &name)
        .await
        .expect("ensure_bucket twice");
    let objects = Arc::new(s3::S3Objects::new(s3c, name.clone()));
    (
        env_on(Arc::new(DynamoTable::new(ddb, name)), objects.clone()),
        objects,
    )
}

impl Env {
    fn service(&self, batch_rows: usize) -> ImportService {
        ImportService {
            table: self.table.clone(),
            objects: self.objects.clone(),
            clock: self.clock.clone(),
            tuning: ImportTuning {
                batch_rows,
                ..ImportTuning::default()
            },
        }
    }

    async fn raw(&self, method: Method, path: &str, ct: &str, body: String) -> (StatusCode, Value) {
        common::call_raw(
            &self.api,
            common::TENANT,
            method,
            path,
            ct,
            Body::from(body),
        )
        .await
    }

    async fn contact(&self, phone: &str) -> Option<shared::domain::contact::Contact> {
        repo::get_contact(&*self.table, "acme", &PhoneNumber::parse(phone).unwrap())
            .await
            .unwrap()
    }
}

/// A CSV with valid and invalid rows and the lines the invalid ones are on.
fn mixed_csv() -> (String, Vec<(u64, &'static str)>) {
    let csv = [
        "Phone,Name,Email,Tags,tag:City,code",                      // 1
        "+91 98123 45600,Asha,asha@example.com,vip;gold,Pune,A0",   // 2
        "+91 12345,Short,,,,",                                      // 3 invalid phone
        "\"+91 98123 45601\",\"Ben, Jr.\",,\"vip\",Mumbai,\"multi", // 4 a quoted field
        "line\"",                                                   // 5   spanning two lines
        "",                                                         // 6 blank
        "+91 98123 45602,Chandra,not-an-email,,,",                  // 7 invalid email
        ",Nobody,,,,",                                              // 8 no phone
        "+91 98123 45603,Dev,,,,C3,extra",                          // 9 too many values
        "+91 98123 45604,Esha",                                     // 10 short row: fine
        "+91 98123 45600,Asha K,,,,A0-new",                         // 11 same phone: later wins
        "+91 98123 45605,Fatima,,x#y,,",                            // 12 bad tag
        "+91 98123 45606,Gita,,,Kolkata,G6",                        // 13
    ]
    .join("\n");
    (
        csv + "\n",
        vec![
            (3, "phone"),
            (7, "email"),
            (8, "phone"),
            (9, "values"),
            (12, "tags"),
        ],
    )
}

fn check_mixed(errors: &[Value], expected: &[(u64, &str)]) {
    let got: Vec<(u64, String)> = errors
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(expected) {
        assert_eq!(line, want_line, "{got:?}");
        assert!(
            reason.contains(want),
            "line {line}: {reason} should mention {want}"
        );
    }
}

async fn check_mixed_contacts(e: &Env) {
    let asha = e.contact("919812345600").await.expect("imported");
    assert_eq!(asha.name.as_deref(), Some("Asha K"), "the later row wins");
    assert_eq!(
        asha.email.as_deref(),
        Some("asha@example.com"),
        "empty cells keep values"
    );
    assert_eq!(asha.fields["code"], "A0-new");
    assert_eq!(asha.valued_tags["city"], "Pune");
    assert_eq!(
        asha.tags.iter().cloned().collect::<Vec<_>>(),
        vec!["gold", "vip"]
    );
    let ben = e.contact("919812345601").await.expect("imported");
    assert_eq!(ben.name.as_deref(), Some("Ben, Jr."));
    assert_eq!(ben.fields["code"], "multi\nline");
    assert!(e.contact("919812345604").await.is_some());
    assert!(e.contact("919812345606").await.is_some());
    for bad in ["919812345602", "919812345603", "919812345605"] {
        assert!(e.contact(bad).await.is_none(), "{bad} was invalid");
    }
}

#[tokio::test]
async fn r2_4_invalid_rows_reported_by_line_valid_rows_imported() {
    let e = memory_env();
    let (_, list) = e
        .call(Method::POST, "/lists", Some(json!({"name": "Imported"})))
        .await;
    let list_id = list["id"].as_str().unwrap();
    let (csv, expected) = mixed_csv();
    let (s, imp) = e
        .raw(
            Method::POST,
            &format!("/contacts/import?list_id={list_id}"),
            "text/csv; charset=utf-8",
            csv,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{imp}");
    assert_eq!(imp["status"], "COMPLETED");
    assert_eq!(
        (
            imp["rows"].as_u64(),
            imp["imported"].as_u64(),
            imp["invalid"].as_u64()
        ),
        (Some(10), Some(5), Some(5)),
        "{imp}"
    );
    check_mixed(imp["errors"].as_array().unwrap(), &expected);
    check_mixed_contacts(&e).await;
    // The imported contacts joined the list (Asha once).
    let (_, members) = e
        .call(Method::GET, &format!("/lists/{list_id}/members"), None)
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 4, "{members}");
    // The import can be read again, and its errors paged.
    let id = imp["id"].as_str().unwrap();
    let (s, again) = e.call(Method::GET, &format!("/imports/{id}"), None).await;
    assert_eq!((s, again["invalid"].as_u64()), (StatusCode::OK, Some(5)));
    let (s, page) = e
        .call(Method::GET, &format!("/imports/{id}/errors?limit=2"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());
    // Importing the same file again changes nothing and reports the same rows.
    let (csv, _) = mixed_csv();
    let (_, imp2) = e
        .raw(Method::POST, "/contacts/import", "text/csv", csv)
        .await;
    assert_eq!(
        (imp2["imported"].as_u64(), imp2["invalid"].as_u64()),
        (Some(5), Some(5))
    );
    // Segments see imported tags.
    let (_, c) = e
        .call(Method::POST, "/campaigns", Some(json!({"name": "x"})))
        .await;
    let (_, added) = e
        .call(
            Method::POST,
            &format!("/campaigns/{}/segments", c["id"].as_str().unwrap()),
            Some(json!({"tags": ["vip"]})),
        )
        .await;
    assert_eq!(added["added"], 2, "{added}");
}

#[tokio::test]
async fn r2_4_inline_import_checks_header_mapping_type_and_size() {
    let e = memory_env();
    let (s, b) = e
        .raw(
            Method::POST,
            "/contacts/import",
            "text/csv",
            "name,email\nA,a@x.in\n".into(),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("header")),
        "{b}"
    );
    let (s, b) = e
        .raw(Method::POST, "/contacts/import", "text/csv", String::new())
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("header")),
        "{b}"
    );
    // An explicit mapping (URL-encoded JSON) names the columns.
    let mapping = "%7B%22Mobile%20No%22%3A%22phone%22%2C%22Town%22%3A%22tag%3Acity%22%2C%22Ref%22%3A%22ignore%22%7D";
    let (s, b) = e
        .raw(
            Method::POST,
            &format!("/contacts/import?mapping={mapping}"),
            "text/csv",
            "Mobile No,Town,Ref,Notes\n+91 98123 45610,Pune,r1,hello\n".into(),
        )
        .await;
    assert_eq!(
        (s, b["imported"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{b}"
    );
    let c = e.contact("919812345610").await.unwrap();
    assert_eq!(c.valued_tags["city"], "Pune");
    assert_eq!(c.fields.get("Notes").map(String::as_str), Some("hello"));
    assert!(!c.fields.contains_key("Ref"));
    let (s, b) = e
        .raw(
            Method::POST,
            "/contacts/import?mapping=%7B%22x%22%3A%22nope%22%7D",
            "text/csv",
            "x\n1\n".into(),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("mapping.x")),
        "{b}"
    );
    let (s, b) = e
        .raw(
            Method::POST,
            "/contacts/import?list_id=lst_missing",
            "text/csv",
            "phone\n".into(),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("list_id")),
        "{b}"
    );
    // Windows line ends, a blank line and no line end after the last row: lines still right.
    let (s, b) = e
        .raw(
            Method::POST,
            "/contacts/import",
            "text/csv",
            "phone,name\r\n+91 98123 45620,A\r\n\r\n+91 12345,B".into(),
        )
        .await;
    assert_eq!(
        (s, b["imported"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{b}"
    );
    assert_eq!(b["errors"][0]["line"], 4, "{b}");
    assert_eq!(
        e.contact("919812345620").await.unwrap().name.as_deref(),
        Some("A")
    );
    let (s, _) = e
        .raw(
            Method::POST,
            "/contacts/import",
            "application/json",
            "{}".into(),
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("phone\n{}", "+91 98123 45678\n".repeat(70_000));
    let (s, b) = e
        .raw(Method::POST, "/contacts/import", "text/csv", big)
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("POST /imports"),
        "{b}"
    );
}

/// `rows` rows; every 10th has an invalid phone. Returns the CSV and the invalid lines.
fn big_csv(rows: usize) -> (String, Vec<u64>) {
    let mut s = String::from("phone,name,tags,tag:city,note\n");
    let mut bad = Vec::new();
    for i in 0..rows {
        let line = i as u64 + 2;
        if i % 10 == 9 {
            s.push_str(&format!("+91 12{i},Bad {i},,,\n"));
            bad.push(line);
        } else {
            // Non-ASCII text, split across chunk boundaries by the 7-byte chunks.
            s.push_str(&format!(
                "+91 9{:09},Çontact {i},t{},Pune,\"n\u{e9}e {i}\"\n",
                100_000_000 + i,
                i % 3
            ));
        }
    }
    (s, bad)
}

async fn upload_flow(e: &Env, rows: usize, put: impl AsyncFnOnce(&str, String)) {
    let (_, list) = e
        .call(Method::POST, "/lists", Some(json!({"name": "Big"})))
        .await;
    let list_id = list["id"].as_str().unwrap().to_owned();
    let (s, ticket) = e
        .call(Method::POST, "/imports", Some(json!({"list_id": list_id})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["import"]["status"], "AWAITING_UPLOAD");
    assert_eq!(
        (
            ticket["method"].as_str(),
            ticket["headers"]["content-type"].as_str()
        ),
        (Some("PUT"), Some("text/csv"))
    );
    let id = ticket["import"]["id"].as_str().unwrap().to_owned();
    let url = ticket["upload_url"].as_str().unwrap().to_owned();
    let (csv, bad) = big_csv(rows);
    put(&url, csv).await;

    // The bucket's event names the object; the importer runs with a budget so small that
    // it stops after every batch and continues from its checkpoint with a ranged read.
    let event = ImporterEvent::parse(s3_event(&format!("imports/acme/{id}.csv"))).unwrap();
    let svc = e.service(100);
    let mut again = svc.handle(event, "worker-1", Duration::ZERO).await.unwrap();
    let mut invocations = 1;
    while let Some(c) = again.pop() {
        // A duplicate delivery while nobody holds the lease is harmless too.
        let next = ImporterEvent::parse(serde_json::to_value(&c).unwrap()).unwrap();
        again = svc
            .handle(next, &format!("worker-{invocations}"), Duration::ZERO)
            .await
            .unwrap();
        invocations += 1;
        let (_, mid) = e.call(Method::GET, &format!("/imports/{id}"), None).await;
        assert!(
            mid["status"] == "RUNNING" || mid["status"] == "COMPLETED",
            "{mid}"
        );
    }
    assert!(
        invocations >= rows / 100,
        "continued across {invocations} invocations"
    );
    let (s, imp) = e.call(Method::GET, &format!("/imports/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(imp["status"], "COMPLETED", "{imp}");
    assert_eq!(
        (
            imp["rows"].as_u64(),
            imp["imported"].as_u64(),
            imp["invalid"].as_u64()
        ),
        (
            Some(rows as u64),
            Some((rows - bad.len()) as u64),
            Some(bad.len() as u64)
        ),
        "{imp}"
    );
    // Errors by line, across the resumes.
    let mut lines = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!(
                "/imports/{id}/errors?limit=40&cursor={}",
                common::urlencode(c)
            ),
            None => format!("/imports/{id}/errors?limit=40"),
        };
        let (_, page) = e.call(Method::GET, &q, None).await;
        lines.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["line"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(lines, bad);
    let last = rows - 2;
    let c = e
        .contact(&format!("919{:09}", 100_000_000 + last))
        .await
        .expect("last row imported");
    assert_eq!(c.name.as_deref(), Some(format!("Çontact {last}").as_str()));
    assert_eq!(c.fields["note"], format!("née {last}"));
    // Imported contacts are list members.
    let mut members = 0;
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!(
                "/lists/{list_id}/members?limit=1000&cursor={}",
                common::urlencode(c)
            ),
            None => format!("/lists/{list_id}/members?limit=1000"),
        };
        let (_, page) = e.call(Method::GET, &q, None).await;
        members += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(members, rows - bad.len());
    // Finished: a late duplicate event does nothing, and the upload is deleted.
    assert!(matches!(
        svc.run(&acme(), &id, "late", Duration::ZERO).await.unwrap(),
        RunOutcome::Busy
    ));
    assert!(e
        .objects
        .get_from(&format!("imports/acme/{id}.csv"), 0)
        .await
        .unwrap()
        .is_none());
}

/// An S3 `ObjectCreated:Put` notification for `key`.
fn s3_event(key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-21T09:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "imports",
            "bucket": {"name": "b", "ownerIdentity": {"principalId": "x"}, "arn": "arn:aws:s3:::b"},
            "object": {"key": key, "size": 1, "eTag": "e", "sequencer": "1"}}
    }]})
}

/// Rows are reported on their lines across resumes whatever the line ends: `\n`, `\r\n`
/// (a checkpoint may fall between the `\r` and the `\n`, a chunk may split them) and old
/// Mac `\r`, with blank lines and quoted notes over two lines in between.
#[tokio::test]
async fn r2_4_rows_keep_their_lines_across_resumes_with_any_line_end() {
    for eol in ["\n", "\r\n", "\r"] {
        let e = memory_env();
        let mut csv = format!("phone,note{eol}");
        let mut bad = Vec::new();
        let mut line = 2;
        for i in 0..30u64 {
            if i % 4 == 1 {
                csv.push_str(eol);
                line += 1;
            }
            let phone = format!("+91 9{:09}", 100_000_000 + i);
            if i % 3 == 0 {
                csv.push_str(&format!("+91 12{i},bad{eol}"));
                bad.push(line);
                line += 1;
            } else if i % 5 == 2 {
                csv.push_str(&format!("{phone},\"two{eol}lines\"{eol}"));
                line += 2;
            } else {
                csv.push_str(&format!("{phone},one{eol}"));
                line += 1;
            }
        }
        // The last row has no line end.
        csv.push_str("+91 1299");
        bad.push(line);
        let svc = e.service(4);
        let ticket = svc.create_upload(&acme(), None, None).await.unwrap();
        let id = ticket.import.id.clone();
        e.objects
            .put(&ticket.import.object_key(), csv.into(), "text/csv")
            .await
            .unwrap();
        match svc
            .run_to_end(&acme(), &id, "me", Duration::ZERO)
            .await
            .unwrap()
        {
            RunOutcome::Finished(i) => assert_eq!(
                (i.status, i.rows, i.invalid),
                (ImportStatus::Completed, 31, bad.len() as u64),
                "{eol:?}: {i:?}"
            ),
            other => panic!("{eol:?}: {other:?}"),
        }
        let (_, imp) = e.call(Method::GET, &format!("/imports/{id}"), None).await;
        let lines: Vec<u64> = imp["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, bad, "{eol:?}: {imp}");
    }
}

#[tokio::test]
async fn r2_4_large_import_streams_from_object_storage() {
    let e = memory_env();
    let objects = e.objects.clone();
    upload_flow(&e, 1000, async |url: &str, csv: String| {
        let key = url
            .strip_prefix("http://127.0.0.1:3000/local/objects/")
            .unwrap()
            .split('?')
            .next()
            .unwrap();
        objects.put(key, csv.into(), "text/csv").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn r2_4_large_import_streams_from_s3_on_the_emulator() {
    let (e, _) = aws_env().await;
    upload_flow(&e, 400, async |url: &str, csv: String| {
        // A real HTTP PUT to the presigned URL, as a browser or curl would do it.
        let resp = reqwest::Client::new()
            .put(url)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "PUT to the presigned URL: {}",
            resp.status()
        );
    })
    .await;
}

#[tokio::test]
async fn r2_4_s3_adapter_streams_ranges_and_reports_missing_objects() {
    common::require_emulator(WHAT);
    let (_, objects) = aws_env().await;
    let body = "0123456789".repeat(10_000);
    objects
        .put("imports/t/imp_x.csv", body.clone().into(), "text/csv")
        .await
        .unwrap();
    let read = |offset: u64| {
        let objects = objects.clone();
        async move {
            use futures::StreamExt;
            let mut s = objects
                .get_from("imports/t/imp_x.csv", offset)
                .await
                .unwrap()
                .unwrap();
            let mut out = Vec::new();
            while let Some(c) = s.next().await {
                out.extend_from_slice(&c.unwrap());
            }
            String::from_utf8(out).unwrap()
        }
    };
    assert_eq!(read(0).await, body);
    assert_eq!(read(99_995).await, "56789");
    assert_eq!(
        read(100_000).await,
        "",
        "an offset at the end reads nothing"
    );
    assert!(objects
        .get_from("imports/t/missing.csv", 0)
        .await
        .unwrap()
        .is_none());
    objects.delete("imports/t/imp_x.csv").await.unwrap();
    objects.delete("imports/t/imp_x.csv").await.unwrap();
    assert!(objects
        .get_from("imports/t/imp_x.csv", 0)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn r2_4_invalid_rows_reported_by_line_on_dynamodb() {
    let (e, _) = aws_env().await;
    let (csv, expected) = mixed_csv();
    let (s, imp) = e
        .raw(Method::POST, "/contacts/import", "text/csv", csv)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{imp}");
    assert_eq!(
        (imp["imported"].as_u64(), imp["invalid"].as_u64()),
        (Some(5), Some(5)),
        "{imp}"
    );
    check_mixed(imp["errors"].as_array().unwrap(), &expected);
    check_mixed_contacts(&e).await;
}

#[tokio::test]
async fn r2_4_one_worker_at_a_time_and_broken_files_fail_the_import() {
    let e = memory_env();
    let svc = e.service(10);
    let ticket = svc.create_upload(&acme(), None, None).await.unwrap();
    let id = ticket.import.id.clone();
    let key = ticket.import.object_key();
    e.objects
        .put(&key, "phone\n+91 98123 45678\n".into(), "text/csv")
        .await
        .unwrap();
    // Another worker holds the lease: a duplicate event backs off.
    let mut imp = repo::get_import(&*e.table, "acme", &id)
        .await
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now();
    imp.claim("other", e.clock_now() + chrono::Duration::minutes(5), now)
        .unwrap();
    repo::save_import(&*e.table, &mut imp).await.unwrap();
    assert_eq!(
        svc.run(&acme(), &id, "me", Duration::from_secs(60))
            .await
            .unwrap(),
        RunOutcome::Busy
    );
    imp.release(now);
    repo::save_import(&*e.table, &mut imp).await.unwrap();
    match svc
        .run(&acme(), &id, "me", Duration::from_secs(60))
        .await
        .unwrap()
    {
        RunOutcome::Finished(i) => assert_eq!((i.status, i.imported), (ImportStatus::Completed, 1)),
        other => panic!("{other:?}"),
    }
    // A file whose header maps no phone fails as a whole, with the reason.
    let t2 = svc.create_upload(&acme(), None, None).await.unwrap();
    e.objects
        .put(&t2.import.object_key(), "name\nx\n".into(), "text/csv")
        .await
        .unwrap();
    match svc
        .run(&acme(), &t2.import.id, "me", Duration::from_secs(60))
        .await
        .unwrap()
    {
        RunOutcome::Finished(i) => {
            assert_eq!(i.status, ImportStatus::Failed);
            assert!(i.failure.unwrap().contains("no phone"));
        }
        other => panic!("{other:?}"),
    }
    // A row longer than the limit stops the import instead of filling memory.
    let t3 = svc.create_upload(&acme(), None, None).await.unwrap();
    let long = format!("phone,note\n+91 98123 45678,\"{}\"\n", "x".repeat(3000));
    e.objects
        .put(&t3.import.object_key(), long.into(), "text/csv")
        .await
        .unwrap();
    let tight = ImportService {
        tuning: ImportTuning {
            max_row_bytes: 1000,
            ..ImportTuning::default()
        },
        ..e.service(10)
    };
    match tight
        .run(&acme(), &t3.import.id, "me", Duration::from_secs(60))
        .await
        .unwrap()
    {
        RunOutcome::Finished(i) => {
            assert_eq!(i.status, ImportStatus::Failed);
            assert!(i.failure.unwrap().contains("longer than"), "row limit");
        }
        other => panic!("{other:?}"),
    }
    // Unknown imports and stray keys are ignored.
    assert_eq!(
        svc.run(&acme(), "imp_missing", "me", Duration::ZERO)
            .await
            .unwrap(),
        RunOutcome::Unknown
    );
    let ev = ImporterEvent::parse(s3_event("other/file.csv")).unwrap();
    assert!(svc
        .handle(ev, "me", Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

impl Env {
    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use shared::ports::Clock;
        self.clock.now()
    }
}

/// The tenant these tests import for, typed as the importer takes it.
fn acme() -> shared::domain::ids::TenantId {
    shared::domain::ids::TenantId::parse("acme").unwrap()
}

/// Finding 14: an uploaded file has a row cap and a size cap; past either the import
/// fails as a whole, naming the cap, with what came before it kept.
#[tokio::test]
async fn r2_4_an_import_past_its_row_or_size_cap_fails_naming_it() {
    let e = memory_env();
    let mut svc = e.service(2);
    svc.tuning.max_rows = 4;
    let rows: String = (0..10).map(|i| format!("+91 98123 456{i:02}\n")).collect();
    let ticket = svc.create_upload(&acme(), None, None).await.unwrap();
    e.objects
        .put(
            &ticket.import.object_key(),
            format!("phone\n{rows}").into(),
            "text/csv",
        )
        .await
        .unwrap();
    match svc
        .run(&acme(), &ticket.import.id, "me", Duration::from_secs(60))
        .await
        .unwrap()
    {
        RunOutcome::Finished(i) => {
            assert_eq!(i.status, ImportStatus::Failed, "{i:?}");
            assert!(i.failure.as_deref().unwrap().contains("4 rows"), "{i:?}");
            assert_eq!(i.imported, 4, "the rows before the cap are kept");
        }
        other => panic!("{other:?}"),
    }
    let mut svc = e.service(2);
    svc.tuning.max_bytes = 40;
    let ticket = svc.create_upload(&acme(), None, None).await.unwrap();
    e.objects
        .put(
            &ticket.import.object_key(),
            format!("phone\n{rows}").into(),
            "text/csv",
        )
        .await
        .unwrap();
    match svc
        .run(&acme(), &ticket.import.id, "me", Duration::from_secs(60))
        .await
        .unwrap()
    {
        RunOutcome::Finished(i) => {
            assert_eq!(i.status, ImportStatus::Failed, "{i:?}");
            assert!(i.failure.as_deref().unwrap().contains("40 bytes"), "{i:?}");
        }
        other => panic!("{other:?}"),
    }
}
