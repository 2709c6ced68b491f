//! The ports across processes: the parent serves its table and queue, one JSON call per
//! request, and a function's process reaches them through [`RemoteTable`] and
//! [`RemoteQueue`], which implement `shared::ports::Table` and `Queue` by forwarding each
//! call. Every answer carries the parent's clock, which [`RemoteClock`] follows, so the
//! functions see the time the parent plays without asking for it.
//!
//! Two transports carry the same calls: HTTP (`POST /call` on axum, reqwest keep-alive;
//! 200 / 409 `ConditionFailed` / 500 `Backend`, the clock in `x-now-ms`) and plain TCP
//! frames (a little-endian u32 length, then the call's JSON; the answer holds an outcome
//! byte, the clock as i64 milliseconds and the result's JSON) over connections kept open
//! and reused. A million contacts are some 18 million calls; the frames cost about 60 %
//! of HTTP's CPU per call, so the benchmark uses them.

use super::store::{SimQueue, StoreTable};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shared::domain::Time;
use shared::ports::{
    Clock, Cond, Item, OutMessage, Page, PortError, PortResult, Query, Queue, Received, Table,
};
use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use testkit::memory::ManualClock;

/// One port call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call<'a> {
    Get {
        pk: Cow<'a, str>,
        sk: Cow<'a, str>,
    },
    Put {
        item: Item,
        cond: Cond,
    },
    Delete {
        pk: Cow<'a, str>,
        sk: Cow<'a, str>,
    },
    DeleteMany {
        keys: Cow<'a, [(String, String)]>,
    },
    Query {
        q: Cow<'a, Query>,
    },
    Add {
        pk: Cow<'a, str>,
        sk: Cow<'a, str>,
        deltas: Cow<'a, [(String, i64)]>,
    },
    Send {
        msgs: Vec<OutMessage>,
    },
    Receive {
        max: u32,
    },
    /// Deletes received messages by receipt (the event source mapping's batch delete).
    DeleteMessages {
        receipts: Cow<'a, [String]>,
    },
    /// Just the clock (in the header, like every answer).
    Now,
}

/// What the parent serves.
pub struct Host {
    pub table: Arc<StoreTable>,
    pub queue: Arc<SimQueue>,
    pub clock: Arc<ManualClock>,
}

fn answer(clock: &ManualClock, status: StatusCode, body: String) -> Response {
    (
        status,
        [
            ("content-type", "application/json".to_owned()),
            ("x-now-ms", clock.now().timestamp_millis().to_string()),
        ],
        body,
    )
        .into_response()
}

fn serve_call(host: &Host, call: Call<'_>) -> PortResult<String> {
    Ok(match call {
        Call::Get { pk, sk } => match host.table.get_raw(&pk, &sk) {
            Some(j) => j.into_string(),
            None => "null".into(),
        },
        Call::Put { item, cond } => {
            host.table.put_item(&item, &cond)?;
            "null".into()
        }
        Call::Delete { pk, sk } => {
            host.table.delete_key(&pk, &sk);
            "null".into()
        }
        Call::DeleteMany { keys } => {
            host.table.delete_keys(&keys);
            "null".into()
        }
        Call::Query { q } => host.table.query_raw(&q)?.to_json(),
        Call::Add { pk, sk, deltas } => host.table.add_deltas(&pk, &sk, &deltas).into_string(),
        Call::Send { msgs } => {
            host.queue.send_msgs(msgs)?;
            "null".into()
        }
        Call::Receive { max } => {
            serde_json::to_string(&host.queue.receive_msgs(max)).expect("messages serialise")
        }
        Call::DeleteMessages { receipts } => {
            host.queue.delete_receipts(&receipts);
            "null".into()
        }
        Call::Now => "null".into(),
    })
}

/// How an answer went: 200 / 409 / 500 over HTTP, a status byte over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok = 0,
    ConditionFailed = 1,
    Backend = 2,
}

fn handle(host: &Host, body: &[u8]) -> (Outcome, String) {
    let call: Call<'_> = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => {
            return (
                Outcome::Backend,
                serde_json::to_string(&format!("bad call: {e}")).unwrap(),
            )
        }
    };
    match serve_call(host, call) {
        Ok(body) => (Outcome::Ok, body),
        Err(PortError::ConditionFailed) => (Outcome::ConditionFailed, "null".into()),
        Err(PortError::Backend(m)) => (Outcome::Backend, serde_json::to_string(&m).unwrap()),
        // The bench's workers page with the cursors they were given, and its table never
        // refuses: neither is expected.
        Err(e @ (PortError::BadCursor(_) | PortError::Refused(_))) => (
            Outcome::Backend,
            serde_json::to_string(&e.to_string()).unwrap(),
        ),
    }
}

async fn call_route(State(host): State<Arc<Host>>, body: Bytes) -> Response {
    let (outcome, body) = handle(&host, &body);
    let status = match outcome {
        Outcome::Ok => StatusCode::OK,
        Outcome::ConditionFailed => StatusCode::CONFLICT,
        Outcome::Backend => StatusCode::INTERNAL_SERVER_ERROR,
    };
    answer(&host.clock, status, body)
}

/// Where the parent serves: the same calls over HTTP and over plain TCP frames.
pub struct Served {
    /// `http://127.0.0.1:PORT` (`POST /call`).
    pub http: String,
    /// `tcp://127.0.0.1:PORT`: a frame is a little-endian u32 length and the call's JSON;
    /// the answer's frame holds an outcome byte, the clock (i64 ms) and the result's JSON.
    pub tcp: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serves `host` on two free ports of 127.0.0.1 until the answer is dropped.
pub async fn serve(host: Arc<Host>) -> std::io::Result<Served> {
    let app = axum::Router::new()
        .route("/call", axum::routing::post(call_route))
        .with_state(host.clone());
    let http = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let http_addr = http.local_addr()?;
    let http_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            eprintln!("store server stopped: {e}");
        }
    });
    let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let tcp_addr = tcp.local_addr()?;
    let tcp_task = tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let host = host.clone();
            tokio::spawn(async move {
                // A connection ends when the client closes it.
                let _ = serve_frames(&host, stream).await;
            });
        }
    });
    Ok(Served {
        http: format!("http://{http_addr}"),
        tcp: format!("tcp://{tcp_addr}"),
        tasks: vec![http_task, tcp_task],
    })
}

async fn serve_frames(host: &Host, stream: tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = tokio::io::BufReader::new(r);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        let len = r.read_u32_le().await? as usize;
        buf.resize(len, 0);
        r.read_exact(&mut buf).await?;
        let (outcome, body) = handle(host, &buf);
        out.clear();
        out.extend_from_slice(&((body.len() + 9) as u32).to_le_bytes());
        out.push(outcome as u8);
        out.extend_from_slice(&host.clock.now().timestamp_millis().to_le_bytes());
        out.extend_from_slice(body.as_bytes());
        w.write_all(&out).await?;
    }
}

/// The parent's clock as last heard: every answer moves it (never backwards).
pub struct RemoteClock {
    ms: AtomicI64,
}

impl RemoteClock {
    pub fn new(at: Time) -> Self {
        RemoteClock {
            ms: AtomicI64::new(at.timestamp_millis()),
        }
    }
    pub fn heard(&self, ms: i64) {
        self.ms.fetch_max(ms, Ordering::SeqCst);
    }
}

impl Clock for RemoteClock {
    fn now(&self) -> Time {
        chrono::DateTime::from_timestamp_millis(self.ms.load(Ordering::SeqCst))
            .expect("the clock is in range")
    }
}

struct Conn {
    r: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

enum Link {
    /// One HTTP client: keep-alive connections, reused.
    Http {
        client: reqwest::Client,
        url: String,
    },
    /// Idle connections; a call takes one (or opens one) and gives it back.
    Tcp {
        addr: String,
        idle: std::sync::Mutex<Vec<Conn>>,
    },
}

/// The parent's store, from a function's process.
pub struct Remote {
    link: Link,
    pub clock: Arc<RemoteClock>,
}

fn backend(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::Backend(format!("{what}: {e}"))
}

impl Remote {
    /// `base` is one of [`Served`]'s addresses.
    pub fn new(base: &str, clock: Arc<RemoteClock>) -> anyhow::Result<Arc<Remote>> {
        let link = match base.strip_prefix("tcp://") {
            Some(addr) => Link::Tcp {
                addr: addr.to_owned(),
                idle: Default::default(),
            },
            None => Link::Http {
                client: reqwest::Client::builder()
                    .no_proxy()
                    .http1_only()
                    .pool_max_idle_per_host(64)
                    .tcp_nodelay(true)
                    .build()?,
                url: format!("{}/call", base.trim_end_matches('/')),
            },
        };
        Ok(Arc::new(Remote { link, clock }))
    }

    pub async fn call<T: serde::de::DeserializeOwned>(&self, call: &Call<'_>) -> PortResult<T> {
        let (outcome, now_ms, bytes) = match &self.link {
            Link::Http { client, url } => {
                let body = serde_json::to_vec(call).map_err(|e| backend("call", e))?;
                let resp = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| backend("store unreachable", e))?;
                let now_ms = resp
                    .headers()
                    .get("x-now-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let outcome = match resp.status() {
                    StatusCode::OK => Outcome::Ok,
                    StatusCode::CONFLICT => Outcome::ConditionFailed,
                    _ => Outcome::Backend,
                };
                let bytes = resp.bytes().await.map_err(|e| backend("store answer", e))?;
                (outcome, now_ms, bytes.to_vec())
            }
            Link::Tcp { addr, idle } => {
                let mut frame = vec![0u8; 4];
                serde_json::to_writer(&mut frame, call).map_err(|e| backend("call", e))?;
                let len = (frame.len() - 4) as u32;
                frame[..4].copy_from_slice(&len.to_le_bytes());
                let conn = idle.lock().unwrap().pop();
                let mut conn = match conn {
                    Some(c) => c,
                    None => {
                        let s = tokio::net::TcpStream::connect(addr.as_str())
                            .await
                            .map_err(|e| backend("store unreachable", e))?;
                        s.set_nodelay(true).map_err(|e| backend("store", e))?;
                        let (r, w) = s.into_split();
                        Conn {
                            r: tokio::io::BufReader::new(r),
                            w,
                        }
                    }
                };
                let answer = exchange(&mut conn, &frame)
                    .await
                    .map_err(|e| backend("store", e))?;
                // Only a connection that finished its exchange goes back.
                idle.lock().unwrap().push(conn);
                let outcome = match answer.first() {
                    Some(0) => Outcome::Ok,
                    Some(1) => Outcome::ConditionFailed,
                    _ => Outcome::Backend,
                };
                let now_ms = answer
                    .get(1..9)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("eight bytes")));
                (
                    outcome,
                    now_ms,
                    answer.get(9..).unwrap_or_default().to_vec(),
                )
            }
        };
        if let Some(ms) = now_ms {
            self.clock.heard(ms);
        }
        match outcome {
            Outcome::Ok => serde_json::from_slice(&bytes).map_err(|e| backend("store answer", e)),
            Outcome::ConditionFailed => Err(PortError::ConditionFailed),
            Outcome::Backend => Err(PortError::Backend(
                serde_json::from_slice::<String>(&bytes)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned()),
            )),
        }
    }
}

async fn exchange(conn: &mut Conn, frame: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.w.write_all(frame).await?;
    let len = conn.r.read_u32_le().await? as usize;
    let mut answer = vec![0u8; len];
    conn.r.read_exact(&mut answer).await?;
    Ok(answer)
}

/// `shared::ports::Table` in another process.
pub struct RemoteTable(pub Arc<Remote>);

#[async_trait]
impl Table for RemoteTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.0
            .call(&Call::Get {
                pk: pk.into(),
                sk: sk.into(),
            })
            .await
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.0.call(&Call::Put { item, cond }).await
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.0
            .call(&Call::Delete {
                pk: pk.into(),
                sk: sk.into(),
            })
            .await
    }

    async fn delete_many(&self, keys: &[(String, String)]) -> PortResult<()> {
        self.0
            .call(&Call::DeleteMany {
                keys: Cow::Borrowed(keys),
            })
            .await
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        self.0
            .call(&Call::Query {
                q: Cow::Borrowed(q),
            })
            .await
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.0
            .call(&Call::Add {
                pk: pk.into(),
                sk: sk.into(),
                deltas: Cow::Borrowed(deltas),
            })
            .await
    }
}

/// `shared::ports::Queue` in another process. Sends go ten per call, as SQS's
/// SendMessageBatch takes them.
pub struct RemoteQueue(pub Arc<Remote>);

impl RemoteQueue {
    /// Deletes a batch's handled messages in one call (what the event source mapping does
    /// after the function answers).
    pub async fn delete_batch(&self, receipts: &[String]) -> PortResult<()> {
        self.0
            .call(&Call::DeleteMessages {
                receipts: Cow::Borrowed(receipts),
            })
            .await
    }
}

#[async_trait]
impl Queue for RemoteQueue {
    async fn send(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        if msgs.iter().any(|m| m.delay_secs > 900) {
            return Err(PortError::Backend("DelaySeconds must be 0..=900".into()));
        }
        for chunk in msgs.chunks(10) {
            self.0
                .call::<()>(&Call::Send {
                    msgs: chunk.to_vec(),
                })
                .await?;
        }
        Ok(())
    }

    async fn receive(&self, max: u32) -> PortResult<Vec<Received>> {
        self.0.call(&Call::Receive { max }).await
    }

    async fn delete(&self, receipt: &str) -> PortResult<()> {
        self.delete_batch(&[receipt.to_owned()]).await
    }
}
