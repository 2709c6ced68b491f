//! A minimal local Lambda Runtime API: enough of it for a function to start and ask for
//! its first invocation. It records when the first `GET …/invocation/next` arrives and then
//! never answers it, so the function sits idle the way it does between invocations; an
//! `…/init/error` report is recorded with its body (a function that fails its init must
//! show up as an error, not as a fast start).
//!
//! Plain threads and `std::net`: the timestamp is taken on the thread that reads the
//! request, independent of any async runtime's scheduling, and nothing here needs tokio
//! features the workspace does not enable.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NEXT: &str = "/2018-06-01/runtime/invocation/next";
pub const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// What the function did, with the instant the request was read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `GET /2018-06-01/runtime/invocation/next`: init is over.
    Poll { at: Instant },
    /// `POST /2018-06-01/runtime/init/error`.
    InitError {
        at: Instant,
        /// `Lambda-Runtime-Function-Error-Type`, when sent.
        error_type: Option<String>,
        body: String,
    },
    /// Any other request (answered 404, or 202 for a POST).
    Other { method: String, path: String },
}

/// One server per function start, on `127.0.0.1:<free port>`. Dropping it closes the
/// listener and every connection it holds open.
pub struct RuntimeApi {
    addr: SocketAddr,
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl RuntimeApi {
    pub fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        {
            let stop = stop.clone();
            let conns = conns.clone();
            std::thread::Builder::new()
                .name("runtime-api".into())
                .spawn(move || accept_loop(listener, tx, stop, conns))?;
        }
        Ok(RuntimeApi {
            addr,
            events,
            stop,
            conns,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The next event, or `None` when nothing arrived within `wait`.
    pub fn next_event(&self, wait: Duration) -> Option<Event> {
        match self.events.recv_timeout(wait) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag, and release held requests.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            conns.lock().unwrap().push(clone);
        }
        let tx = tx.clone();
        let _ = std::thread::Builder::new()
            .name("runtime-api-conn".into())
            .spawn(move || serve(stream, tx));
    }
}

/// One HTTP/1.1 connection: requests in turn until the client closes it or a
/// `next` poll parks it.
fn serve(stream: TcpStream, tx: Sender<Event>) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    while let Ok(Some(req)) = read_request(&mut reader) {
        let at = Instant::now();
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", NEXT) => {
                let _ = tx.send(Event::Poll { at });
                // Hold the request: the function waits here as it would for an event.
                // The connection ends when the function is killed or the server dropped.
                let mut sink = [0u8; 1024];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
            ("POST", INIT_ERROR) => {
                let _ = tx.send(Event::InitError {
                    at,
                    error_type: req.error_type,
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                });
                if respond(&mut writer, "202 Accepted", r#"{"status":"OK"}"#).is_err() {
                    return;
                }
            }
            (method, path) => {
                let _ = tx.send(Event::Other {
                    method: method.to_owned(),
                    path: path.to_owned(),
                });
                let (status, body) = if method == "POST" {
                    ("202 Accepted", r#"{"status":"OK"}"#)
                } else {
                    (
                        "404 Not Found",
                        r#"{"errorMessage":"not served by the bench"}"#,
                    )
                };
                if respond(&mut writer, status, body).is_err() {
                    return;
                }
            }
        }
    }
}

fn respond(w: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

struct Request {
    method: String,
    path: String,
    error_type: Option<String>,
    body: Vec<u8>,
}

/// Reads one request; `Ok(None)` when the client closed the connection between requests.
fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    let mut error_type = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "lambda-runtime-function-error-type" => error_type = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    let body = if chunked {
        read_chunked(r)?
    } else {
        let mut b = vec![0; length];
        r.read_exact(&mut b)?;
        b
    };
    Ok(Some(Request {
        method,
        path,
        error_type,
        body,
    }))
}

fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = vec![];
    loop {
        let mut size = String::new();
        r.read_line(&mut size)?;
        let hex = size.trim().split(';').next().unwrap_or_default();
        let n = usize::from_str_radix(hex, 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        if n == 0 {
            // Trailers, then the blank line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        r.read_line(&mut crlf)?;
    }
}
