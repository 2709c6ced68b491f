//! Bulk import of contacts from CSV (R2.4).
//!
//! Two ways in, one code path:
//!
//! - **Inline**: `POST /contacts/import` with a `text/csv` body of at most
//!   [`INLINE_MAX_BYTES`]; the import runs inside the request and answers with its counts
//!   and first errors.
//! - **Upload**: `POST /imports` creates the import and returns a presigned `PUT` URL; the
//!   upload's S3 event invokes the importer function, which streams the object and upserts
//!   the contacts batch by batch. After each batch it checkpoints the byte offset and line
//!   number on the import item; when its time budget runs out it stops at a checkpoint and
//!   the function invokes itself to continue with a ranged GET from there. A million rows
//!   never sit in memory: at most a few batches are in flight.
//!
//! **Parsing.** The `csv` crate parses on a blocking thread, reading a `std::io::Read`
//! fed chunk by chunk from the async object stream through a bounded channel; parsed rows
//! come back in batches over another bounded channel, so both sides apply back-pressure
//! and memory stays flat. `csv` was chosen over `csv-async` because it is the mature,
//! fast parser the workspace already uses, it reports exact byte offsets for checkpoints,
//! and keeping CPU-bound parsing off the async workers leaves them to the table writes.
//! Line numbers are counted by the importer, from the line breaks it hands to `csv`
//! (`\n`, `\r\n` and a lone `\r`, as `csv` reads them; its own count is of `\n` only).
//!
//! **Rows.** Each row becomes a contact upsert with the same rules as `POST /contacts`
//! (empty cells are left out). A row that fails validation is reported with its line
//! number and reason; valid rows are stored. Rows naming the same phone are applied in file
//! order. Re-running a batch after a crash is harmless: upserts are idempotent and the
//! counts come from the checkpoint.

use super::audience::Audience;
use super::audience::{fold_counts, upsert_keyed};
use super::{AppError, AppResult};
use crate::domain::contact::{CheckedKey, NewContact};
use crate::domain::ids::TenantId;
use crate::domain::import::{
    check_caps, parse_object_key, ColumnMap, Import, ImportSource, ImportStatus, RowError,
    MAX_STORED_ERRORS,
};
use crate::domain::phone::PhoneNumber;
use crate::domain::{DomainError, Time};
use crate::ports::{ByteChunks, Clock, ObjectStore, PortError, Table};
use crate::repo;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Largest CSV body `POST /contacts/import` takes; larger files use `POST /imports`.
pub const INLINE_MAX_BYTES: usize = 1024 * 1024;
/// How long a presigned upload URL is valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(3600);
/// Errors shown with an import (`GET /imports/{id}`); the rest are paged.
pub const ERRORS_SHOWN: u32 = 20;

/// How the importer works through a file.
#[derive(Debug, Clone)]
pub struct ImportTuning {
    /// Rows per batch; the checkpoint moves after each batch.
    pub batch_rows: usize,
    /// Contacts upserted at once within a batch.
    pub concurrency: usize,
    /// A row longer than this many bytes stops the import (it would have to be held whole).
    pub max_row_bytes: u64,
    /// Data rows one import may hold; past it the import fails (its earlier rows stay).
    pub max_rows: u64,
    /// Bytes of file one import may read; past it the import fails the same way.
    pub max_bytes: u64,
}

impl Default for ImportTuning {
    fn default() -> Self {
        ImportTuning {
            batch_rows: 500,
            concurrency: 16,
            max_row_bytes: 1024 * 1024,
            max_rows: crate::domain::import::MAX_IMPORT_ROWS,
            max_bytes: crate::domain::import::MAX_IMPORT_BYTES,
        }
    }
}

/// An import with its first invalid rows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    #[serde(flatten)]
    pub import: Import,
    /// The first invalid rows by line (at most 20; `GET /imports/{id}/errors` pages them).
    pub errors: Vec<RowError>,
}

/// What `POST /imports` answers: the import and where to upload the file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UploadTicket {
    pub import: Import,
    /// PUT the CSV file here, with the `content-type` header below.
    pub upload_url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Time,
}

/// What one run of the importer on an upload did.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Finished (completed or failed as a whole).
    Finished(Import),
    /// Stopped at a checkpoint because its time ran out: invoke it again.
    Continue(Import),
    /// Another worker holds it, or it was already finished.
    Busy,
    /// No such import (a stray object in the bucket).
    Unknown,
}

/// The continuation event the importer sends itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueImport {
    /// Always `continue`.
    pub action: String,
    pub tenant: String,
    pub import_id: String,
}

impl ContinueImport {
    pub fn new(tenant: &str, import_id: &str) -> Self {
        ContinueImport {
            action: "continue".into(),
            tenant: tenant.into(),
            import_id: import_id.into(),
        }
    }
}

/// The importer function's event: an S3 notification of uploads, or its own continuation.
#[derive(Debug, Clone)]
pub enum ImporterEvent {
    Uploaded(Vec<(String, String)>),
    Continue(ContinueImport),
}

impl ImporterEvent {
    /// Reads the event: the (tenant, import id) of every upload it names, or a
    /// continuation. Object keys that are not import uploads are skipped with a warning.
    pub fn parse(v: serde_json::Value) -> Result<Self, String> {
        if v.get("action").and_then(|a| a.as_str()) == Some("continue") {
            return serde_json::from_value(v)
                .map(ImporterEvent::Continue)
                .map_err(|e| format!("continuation event: {e}"));
        }
        let ev: aws_lambda_events::event::s3::S3Event =
            serde_json::from_value(v).map_err(|e| format!("S3 event: {e}"))?;
        let mut out = Vec::new();
        for r in ev.records {
            let key = r.s3.object.key.unwrap_or_default();
            // S3 URL-encodes keys in notifications; ours only use safe characters.
            let key = key.replace("%2F", "/");
            match parse_object_key(&key) {
                Some(k) => out.push(k),
                None => tracing::warn!(%key, "object is not an import upload; skipped"),
            }
        }
        Ok(ImporterEvent::Uploaded(out))
    }
}

/// The use cases of uploaded imports: create one with its upload URL, run it.
pub struct ImportService {
    pub table: Arc<dyn Table>,
    pub objects: Arc<dyn ObjectStore>,
    pub clock: Arc<dyn Clock>,
    pub tuning: ImportTuning,
}

impl ImportService {
    /// `POST /imports`: creates the import and a URL to upload the file to.
    pub async fn create_upload(
        &self,
        tenant: &TenantId,
        list_id: Option<String>,
        mapping: Option<BTreeMap<String, String>>,
    ) -> AppResult<UploadTicket> {
        check_request(&*self.table, tenant, list_id.as_deref(), mapping.as_ref()).await?;
        let now = self.clock.now();
        let mut imp = Import::new(tenant, ImportSource::Upload, list_id, mapping, now);
        repo::save_import(&*self.table, &mut imp).await?;
        let url = self
            .objects
            .presign_put(&imp.object_key(), "text/csv", UPLOAD_URL_TTL)
            .await?;
        Ok(UploadTicket {
            import: imp,
            upload_url: url,
            method: "PUT".into(),
            headers: [("content-type".to_string(), "text/csv".to_string())].into(),
            expires_at: now + chrono::Duration::from_std(UPLOAD_URL_TTL).expect("a small duration"),
        })
    }

    /// Works on an uploaded import for at most `budget` (then stops at a checkpoint and
    /// answers [`RunOutcome::Continue`]). `owner` identifies this worker (the Lambda
    /// request id): one worker at a time holds an import.
    pub async fn run(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        budget: Duration,
    ) -> AppResult<RunOutcome> {
        let Some(mut imp) = repo::get_import(&*self.table, tenant, id).await? else {
            return Ok(RunOutcome::Unknown);
        };
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(budget).unwrap_or(chrono::Duration::MAX)
            + chrono::Duration::minutes(2);
        if imp.claim(owner, now + lease, now).is_err() {
            return Ok(RunOutcome::Busy);
        }
        match repo::save_import(&*self.table, &mut imp).await {
            Ok(()) => {}
            Err(PortError::ConditionFailed) => return Ok(RunOutcome::Busy),
            Err(e) => return Err(e.into()),
        }
        let key = imp.object_key();
        let Some(chunks) = self.objects.get_from(&key, imp.offset).await? else {
            imp.fail("the uploaded file is gone".into(), self.clock.now());
            repo::save_import(&*self.table, &mut imp).await?;
            return Ok(RunOutcome::Finished(imp));
        };
        let deadline = tokio::time::Instant::now() + budget;
        let res = run_chunks(
            &self.table,
            &*self.clock,
            &self.tuning,
            &mut imp,
            chunks,
            Some(deadline),
        )
        .await;
        self.finish_run(tenant, id, owner, imp, &key, res).await
    }

    /// Stores how the run ended and answers its outcome (freeing the lease on other errors).
    async fn finish_run(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        mut imp: Import,
        key: &str,
        res: AppResult<Progress>,
    ) -> AppResult<RunOutcome> {
        let now = self.clock.now();
        match res {
            Ok(Progress::Done) => {
                imp.complete(now);
                repo::save_import(&*self.table, &mut imp).await?;
                if let Err(e) = self.objects.delete(key).await {
                    tracing::warn!(error = %e, import_id = %imp.id, "uploaded file not deleted; the bucket's lifecycle rule will");
                }
                Ok(RunOutcome::Finished(imp))
            }
            Ok(Progress::Paused) => {
                imp.release(now);
                repo::save_import(&*self.table, &mut imp).await?;
                Ok(RunOutcome::Continue(imp))
            }
            Err(AppError::Domain(e @ DomainError::Invalid { .. })) => {
                imp.fail(e.to_string(), now);
                repo::save_import(&*self.table, &mut imp).await?;
                Ok(RunOutcome::Finished(imp))
            }
            Err(e) => {
                // Keep the checkpoint; free the lease so a retry can go on from it.
                if let Ok(Some(mut cur)) = repo::get_import(&*self.table, tenant, id).await {
                    if cur.lease_owner.as_deref() == Some(owner) {
                        cur.release(now);
                        let _ = repo::save_import(&*self.table, &mut cur).await;
                    }
                }
                Err(e)
            }
        }
    }

    /// Runs an import until it is finished, continuing in-process instead of invoking a
    /// new function (the local runner, tests).
    pub async fn run_to_end(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        budget: Duration,
    ) -> AppResult<RunOutcome> {
        loop {
            match self.run(tenant, id, owner, budget).await? {
                RunOutcome::Continue(_) => continue,
                other => return Ok(other),
            }
        }
    }

    /// Handles one importer event; returns the continuations to invoke.
    pub async fn handle(
        &self,
        event: ImporterEvent,
        owner: &str,
        budget: Duration,
    ) -> AppResult<Vec<ContinueImport>> {
        let jobs = match event {
            ImporterEvent::Uploaded(v) => v,
            ImporterEvent::Continue(c) => vec![(c.tenant, c.import_id)],
        };
        let mut again = Vec::new();
        for (tenant, id) in jobs {
            let Ok(tenant) = TenantId::parse(&tenant) else {
                tracing::warn!(import_id = %id, "importer event with an invalid tenant; skipped");
                continue;
            };
            match self.run(&tenant, &id, owner, budget).await? {
                RunOutcome::Continue(i) => {
                    tracing::info!(import_id = %id, rows = i.rows, line = i.line, "import continues in a new invocation");
                    again.push(ContinueImport::new(&tenant, &id));
                }
                RunOutcome::Finished(i) => {
                    tracing::info!(import_id = %id, status = ?i.status, rows = i.rows, imported = i.imported, invalid = i.invalid, "import finished")
                }
                RunOutcome::Busy => {
                    tracing::info!(import_id = %id, "import is held by another worker or done")
                }
                RunOutcome::Unknown => tracing::warn!(import_id = %id, "no such import"),
            }
        }
        Ok(again)
    }
}

/// Checks what an import request names before anything is stored.
async fn check_request(
    table: &dyn Table,
    tenant: &str,
    list_id: Option<&str>,
    mapping: Option<&BTreeMap<String, String>>,
) -> AppResult<()> {
    if let Some(m) = mapping {
        crate::domain::import::check_mapping(m)?;
    }
    if let Some(l) = list_id {
        if repo::get_list(table, tenant, l).await?.is_none() {
            return Err(
                DomainError::invalid("list_id", format!("list '{l}' does not exist")).into(),
            );
        }
    }
    Ok(())
}

/// An import with its first errors.
pub async fn view(table: &dyn Table, tenant: &str, id: &str) -> AppResult<ImportView> {
    let import = repo::get_import(table, tenant, id)
        .await?
        .ok_or_else(|| DomainError::not_found("import", id))?;
    let (errors, _) = repo::import_errors(table, tenant, id, ERRORS_SHOWN, None).await?;
    Ok(ImportView { import, errors })
}

impl Audience {
    /// `POST /contacts/import`: imports a small CSV inside the request. A header that maps
    /// no phone column (or a bad mapping) is a 422; invalid rows are reported by line.
    pub async fn import_inline(
        &self,
        tenant: &TenantId,
        body: Bytes,
        list_id: Option<String>,
        mapping: Option<BTreeMap<String, String>>,
    ) -> AppResult<ImportView> {
        if body.len() > INLINE_MAX_BYTES {
            return Err(DomainError::invalid(
                "body",
                format!(
                    "{} bytes is more than {INLINE_MAX_BYTES}; use POST /imports",
                    body.len()
                ),
            )
            .into());
        }
        check_request(&*self.table, tenant, list_id.as_deref(), mapping.as_ref()).await?;
        let now = self.now();
        let mut imp = Import::new(tenant, ImportSource::Inline, list_id, mapping, now);
        imp.claim("inline", now + chrono::Duration::minutes(15), now)?;
        repo::save_import(&*self.table, &mut imp).await?;
        let chunks: ByteChunks = Box::pin(stream::iter([Ok(body)]));
        let res = run_chunks(
            &self.table,
            &*self.clock,
            &ImportTuning::default(),
            &mut imp,
            chunks,
            None,
        )
        .await;
        let now = self.now();
        match res {
            Ok(_) => {
                imp.complete(now);
                repo::save_import(&*self.table, &mut imp).await?;
            }
            Err(e) => {
                imp.fail(e.to_string(), now);
                repo::save_import(&*self.table, &mut imp).await?;
                return Err(e);
            }
        }
        view(&*self.table, tenant, &imp.id).await
    }

    pub async fn get_import(&self, tenant: &TenantId, id: &str) -> AppResult<ImportView> {
        view(&*self.table, tenant, id).await
    }

    /// One page of an import's invalid rows, by line.
    pub async fn import_errors(
        &self,
        tenant: &TenantId,
        id: &str,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<RowError>, Option<String>)> {
        repo::get_import(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("import", id))?;
        Ok(repo::import_errors(&*self.table, tenant, id, limit.clamp(1, 1000), cursor).await?)
    }
}

// ---- the streaming engine ----

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The whole file is processed.
    Done,
    /// Stopped at a checkpoint because the deadline passed.
    Paused,
}

/// A position in the part of the file this run reads: bytes from its start, and the
/// 1-based line there.
#[derive(Debug, Clone, Copy)]
struct Pos {
    offset: u64,
    line: u64,
}

impl Pos {
    /// Where `p`, a position in the part this run reads, is in the file (`self`: the start).
    fn absolute(self, p: Pos) -> Pos {
        Pos {
            offset: self.offset + p.offset,
            line: self.line + p.line - 1,
        }
    }
}

struct RawRow {
    line: u64,
    cells: Result<Vec<String>, String>,
}

enum Parsed {
    Header(Vec<String>, Pos),
    Rows(Vec<RawRow>, Pos),
    /// The file cannot be read on; `retry` when reading the object failed (a later run
    /// may succeed), not when the file itself is broken.
    Failed {
        why: String,
        retry: bool,
    },
}

/// A blocking `Read` over chunks arriving on a channel. It refuses to let one row grow
/// past `max_row` bytes (`row_start` is where the parser's current row began).
///
/// It also notes where the line breaks it hands out are, as `csv` reads them: `\n`,
/// `\r\n` and a lone `\r` each end a line (`csv` itself counts `\n` only, so it cannot
/// number the lines of a file with old Mac line ends, and a record it returns may have
/// the `\n` of its `\r\n` still unread).
struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes, PortError>>,
    /// Reading the object failed (as opposed to the file being broken).
    stream_failed: bool,
    /// The end was reached: a record returned once it is set ended with the file, not
    /// with a line end.
    eof: bool,
    /// The last byte handed out (a `\n` after a `\r` ends no second line).
    last: Option<u8>,
    cur: Bytes,
    handed: u64,
    row_start: Arc<AtomicU64>,
    max_row: u64,
    /// Where the line breaks handed out and not yet counted start (offsets in this run's
    /// part; a `\r\n` at its `\r`). Only those past the parser's position are kept.
    breaks: VecDeque<u64>,
    /// Line breaks counted so far (all starting before the last `breaks_before` offset).
    counted: u64,
}

impl ChunkReader {
    /// Notes the line breaks of `bytes`, handed out from offset `self.handed` on.
    fn note_breaks(&mut self, bytes: &[u8]) {
        let mut prev = self.last;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\r' || (b == b'\n' && prev != Some(b'\r')) {
                self.breaks.push_back(self.handed + i as u64);
            }
            prev = Some(b);
        }
    }

    /// How many line breaks start before `offset` (which never goes back).
    fn breaks_before(&mut self, offset: u64) -> u64 {
        while self.breaks.front().is_some_and(|b| *b < offset) {
            self.breaks.pop_front();
            self.counted += 1;
        }
        self.counted
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.handed - self.row_start.load(Ordering::Relaxed) > self.max_row {
            return Err(std::io::Error::other(format!(
                "a row is longer than {} bytes",
                self.max_row
            )));
        }
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => {
                    self.eof = true;
                    return Ok(0);
                }
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => {
                    self.stream_failed = true;
                    return Err(std::io::Error::other(e.to_string()));
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.note_breaks(&buf[..n]);
        if n > 0 {
            self.last = Some(buf[n - 1]);
        }
        let _ = self.cur.split_to(n);
        self.handed += n as u64;
        Ok(n)
    }
}

fn cells_of(rec: &csv::ByteRecord) -> Result<Vec<String>, String> {
    rec.iter()
        .map(|f| {
            std::str::from_utf8(f)
                .map(str::to_owned)
                .map_err(|_| "the row is not UTF-8 text (save the file as CSV UTF-8)".to_owned())
        })
        .collect()
}

/// Line breaks inside the fields of `rec` (quoted fields keep theirs as written).
fn breaks_inside(rec: &csv::ByteRecord) -> u64 {
    rec.iter()
        .map(|f| {
            let mut prev = None;
            let mut n = 0;
            for &b in f {
                n += u64::from(b == b'\r' || (b == b'\n' && prev != Some(b'\r')));
                prev = Some(b);
            }
            n
        })
        .sum()
}

/// The line the record just read starts on, and the checkpoint after it.
///
/// Counted back from where the record ended (its own `position()` points before the line
/// end of the previous record and any blank lines `csv` skipped): the line breaks before
/// that end, less the ones inside its fields, less its own line end if it has one (a
/// record that ends with the file has none, even when its last field, an unclosed quote,
/// ends with a line break). The checkpoint is at the start of that line end, so a run
/// going on from it reads the whole line end (`\r\n` included) and numbers on right;
/// `csv` skips a line end before a record.
fn record_lines(rdr: &mut csv::Reader<ChunkReader>, rec: &csv::ByteRecord) -> (u64, Pos) {
    let end = rdr.position().byte();
    let r = rdr.get_mut();
    let terminated = !r.eof;
    let last_line = 1 + r.breaks_before(end) - u64::from(terminated);
    let first = last_line.saturating_sub(breaks_inside(rec)).max(1);
    let at = Pos {
        offset: end - u64::from(terminated),
        line: last_line,
    };
    (first, at)
}

/// The position at the end of the file (after `read_byte_record` answered `false`).
fn end_pos(rdr: &mut csv::Reader<ChunkReader>) -> Pos {
    let end = rdr.position().byte();
    Pos {
        offset: end,
        line: 1 + rdr.get_mut().breaks_before(end),
    }
}

/// What the parser thread reads: its part of the file, where that part starts.
struct Part {
    reader: ChunkReader,
    row_start: Arc<AtomicU64>,
    /// Whether the part starts with the header.
    header: bool,
    /// The file's line the part starts on (for messages).
    first_line: u64,
}

/// The parser thread: header (when asked), then batches of rows, with the position after
/// each.
fn parse(part: Part, batch_rows: usize, tx: mpsc::Sender<Parsed>) {
    let Part {
        reader,
        row_start,
        header,
        first_line,
    } = part;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut rec = csv::ByteRecord::new();
    let mut last_line = 1;
    if header {
        match send_header(&mut rdr, &mut rec, &row_start, &tx) {
            Some(line) => last_line = line,
            None => return,
        }
    }
    let mut batch = Batch {
        row_start: &row_start,
        size: batch_rows,
        first_line,
        last_line,
    };
    loop {
        let Some((rows, at, end)) = read_batch(&mut rdr, &mut rec, &mut batch, &tx) else {
            return;
        };
        if !rows.is_empty() && tx.blocking_send(Parsed::Rows(rows, at)).is_err() {
            return;
        }
        if end {
            return;
        }
    }
}

/// Reads and sends the header row (or why it failed): the line it ends on, or `None`
/// when parsing stops there.
fn send_header(
    rdr: &mut csv::Reader<ChunkReader>,
    rec: &mut csv::ByteRecord,
    row_start: &AtomicU64,
    tx: &mpsc::Sender<Parsed>,
) -> Option<u64> {
    match rdr.read_byte_record(rec) {
        Ok(true) => {
            row_start.store(rdr.position().byte(), Ordering::Relaxed);
            let (_, at) = record_lines(rdr, rec);
            let msg = match cells_of(rec) {
                Ok(cells) => Parsed::Header(cells, at),
                Err(e) => Parsed::Failed {
                    why: format!("header: {e}"),
                    retry: false,
                },
            };
            tx.blocking_send(msg).ok().map(|_| at.line)
        }
        Ok(false) => {
            let _ = tx.blocking_send(Parsed::Failed {
                why: "the file is empty".into(),
                retry: false,
            });
            None
        }
        Err(e) => {
            let _ = tx.blocking_send(Parsed::Failed {
                why: format!("reading the header: {e}"),
                retry: rdr.get_ref().stream_failed,
            });
            None
        }
    }
}

/// How the parser thread reads batches of rows.
struct Batch<'a> {
    row_start: &'a AtomicU64,
    /// Rows per batch.
    size: usize,
    /// The file's line the part starts on.
    first_line: u64,
    /// The part's line the last record read ends on.
    last_line: u64,
}

/// Reads up to `batch.size` rows, the checkpoint after them, and whether the file ended;
/// `None` once a failure is sent.
fn read_batch(
    rdr: &mut csv::Reader<ChunkReader>,
    rec: &mut csv::ByteRecord,
    batch: &mut Batch<'_>,
    tx: &mpsc::Sender<Parsed>,
) -> Option<(Vec<RawRow>, Pos, bool)> {
    let mut rows = Vec::with_capacity(batch.size);
    let mut at = None;
    while rows.len() < batch.size {
        match rdr.read_byte_record(rec) {
            Ok(true) => {
                batch
                    .row_start
                    .store(rdr.position().byte(), Ordering::Relaxed);
                let (line, after) = record_lines(rdr, rec);
                batch.last_line = after.line;
                at = Some(after);
                // A line with nothing on it is not a row.
                if rec.len() == 1 && rec[0].is_empty() {
                    continue;
                }
                rows.push(RawRow {
                    line,
                    cells: cells_of(rec),
                });
            }
            Ok(false) => return Some((rows, end_pos(rdr), true)),
            Err(e) => {
                let line = batch.first_line + batch.last_line - 1;
                let _ = tx.blocking_send(Parsed::Failed {
                    why: format!("reading the rows after line {line}: {e}"),
                    retry: rdr.get_ref().stream_failed,
                });
                return None;
            }
        }
    }
    let at = at.unwrap_or_else(|| end_pos(rdr));
    Some((rows, at, false))
}

/// Imports the rows of `chunks` (the file from `import.offset` on) into the table,
/// checkpointing `import` after each batch. With a deadline it stops at the first
/// checkpoint after it.
pub(crate) async fn run_chunks(
    table: &Arc<dyn Table>,
    clock: &dyn Clock,
    tuning: &ImportTuning,
    import: &mut Import,
    chunks: ByteChunks,
    deadline: Option<tokio::time::Instant>,
) -> AppResult<Progress> {
    let base = Pos {
        offset: import.offset,
        line: import.line.max(1),
    };
    let want_header = import.columns.is_none() || import.offset == 0;
    let (pump, parser, mut rx) = start_parser(chunks, tuning, want_header, base.line);
    let result = consume(table, clock, tuning, import, base, deadline, &mut rx).await;
    drop(rx);
    pump.abort();
    let _ = parser.await;
    result
}

/// Spawns the chunk pump and the parser thread; answers their handles and its receiver.
fn start_parser(
    mut chunks: ByteChunks,
    tuning: &ImportTuning,
    want_header: bool,
    first_line: u64,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<Parsed>,
) {
    let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Bytes, PortError>>(4);
    let pump = tokio::spawn(async move {
        while let Some(c) = chunks.next().await {
            let failed = c.is_err();
            if chunk_tx.send(c).await.is_err() || failed {
                return;
            }
        }
    });
    let row_start = Arc::new(AtomicU64::new(0));
    let reader = ChunkReader {
        rx: chunk_rx,
        stream_failed: false,
        eof: false,
        last: None,
        cur: Bytes::new(),
        handed: 0,
        row_start: row_start.clone(),
        max_row: tuning.max_row_bytes,
        breaks: VecDeque::new(),
        counted: 0,
    };
    let part = Part {
        reader,
        row_start,
        header: want_header,
        first_line,
    };
    let (tx, rx) = mpsc::channel::<Parsed>(2);
    let batch_rows = tuning.batch_rows.max(1);
    let parser = tokio::task::spawn_blocking(move || parse(part, batch_rows, tx));
    (pump, parser, rx)
}

/// Applies the parser's messages in order, checkpointing each; pauses past `deadline`.
async fn consume(
    table: &Arc<dyn Table>,
    clock: &dyn Clock,
    tuning: &ImportTuning,
    import: &mut Import,
    base: Pos,
    deadline: Option<tokio::time::Instant>,
    rx: &mut mpsc::Receiver<Parsed>,
) -> AppResult<Progress> {
    while let Some(msg) = rx.recv().await {
        match msg {
            Parsed::Failed { why, retry } => return Err(parse_failure(why, retry, import)),
            Parsed::Header(cells, end) => {
                let map = ColumnMap::from_header(&cells, import.mapping.as_ref())?;
                import.columns = Some(map);
                checkpoint(table, clock, import, base.absolute(end)).await?;
            }
            Parsed::Rows(rows, end) => {
                let rows: Vec<RawRow> = rows
                    .into_iter()
                    .map(|r| RawRow {
                        line: base.line + r.line - 1,
                        cells: r.cells,
                    })
                    .collect();
                let at = base.absolute(end);
                let rows_after = import.rows + rows.len() as u64;
                check_caps(rows_after, at.offset, tuning.max_rows, tuning.max_bytes)?;
                process_batch(table, clock, tuning, import, rows).await?;
                checkpoint(table, clock, import, at).await?;
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    return Ok(match rx.try_recv() {
                        Err(mpsc::error::TryRecvError::Disconnected) => Progress::Done,
                        _ => Progress::Paused,
                    });
                }
            }
        }
    }
    if import.columns.is_none() {
        return Err(DomainError::invalid("header", "the file is empty").into());
    }
    Ok(Progress::Done)
}

/// The error a parser failure stops the run with (`retry`: reading the object failed).
fn parse_failure(why: String, retry: bool, import: &Import) -> AppError {
    if retry {
        AppError::Port(PortError::Backend(format!("import stopped: {why}")))
    } else if import.columns.is_none() {
        DomainError::invalid("header", why).into()
    } else {
        DomainError::invalid("file", why).into()
    }
}

/// Moves the import's checkpoint to `p` (a position in the file) and stores it.
async fn checkpoint(
    table: &Arc<dyn Table>,
    clock: &dyn Clock,
    import: &mut Import,
    p: Pos,
) -> AppResult<()> {
    import.offset = p.offset;
    import.line = p.line;
    import.updated_at = clock.now();
    repo::save_import(&**table, import).await?;
    Ok(())
}

/// The rows of one batch that name the same contact, in file order.
type SameContact = Vec<(u64, CheckedKey, NewContact)>;
/// What upserting one contact's rows did: rows stored, rows rejected, index count changes.
type GroupDone = (u64, Vec<RowError>, BTreeMap<String, i64>);

/// Upserts one batch: rows naming the same phone in file order, others concurrently.
async fn process_batch(
    table: &Arc<dyn Table>,
    clock: &dyn Clock,
    tuning: &ImportTuning,
    import: &mut Import,
    rows: Vec<RawRow>,
) -> AppResult<()> {
    let columns = import.columns.clone().expect("header read before rows");
    let n = rows.len() as u64;
    let (groups, mut errors) = group_rows(&columns, rows);
    let now = clock.now();
    let tenant = import.tenant.clone();
    let list = import.list_id.clone();
    let results: Vec<AppResult<GroupDone>> = stream::iter(groups)
        .map(|rows| upsert_group(table.clone(), tenant.clone(), list.clone(), rows, now))
        .buffer_unordered(tuning.concurrency.max(1))
        .collect()
        .await;
    let mut counts = BTreeMap::new();
    let mut imported = 0;
    for r in results {
        let (ok, errs, c) = r?;
        imported += ok;
        errors.extend(errs);
        fold_counts(&mut counts, c);
    }
    repo::add_index_counts(&**table, &tenant, &counts).await?;
    errors.sort_by_key(|e| e.line);
    let mut stored = import.errors_stored;
    for e in &errors {
        if stored < MAX_STORED_ERRORS {
            repo::put_import_error(&**table, &tenant, &import.id, e).await?;
            stored += 1;
        }
    }
    import.errors_stored = stored;
    import.invalid += errors.len() as u64;
    import.imported += imported;
    import.rows += n;
    debug_assert!(import.status == ImportStatus::Running);
    Ok(())
}

/// Checks a batch's rows: the valid ones grouped by phone in file order, and the errors.
fn group_rows(columns: &ColumnMap, rows: Vec<RawRow>) -> (Vec<SameContact>, Vec<RowError>) {
    let mut errors: Vec<RowError> = Vec::new();
    let mut groups: Vec<SameContact> = Vec::new();
    let mut slot: std::collections::HashMap<PhoneNumber, usize> = Default::default();
    for r in rows {
        let parsed = r
            .cells
            .and_then(|cells| columns.row(cells.iter().map(String::as_str)))
            .and_then(|c| c.checked_key().map(|k| (k, c)).map_err(|e| e.to_string()));
        match parsed {
            Ok((key, c)) => match slot.get(&key.phone) {
                Some(i) => groups[*i].push((r.line, key, c)),
                None => {
                    slot.insert(key.phone.clone(), groups.len());
                    groups.push(vec![(r.line, key, c)]);
                }
            },
            Err(reason) => errors.push(RowError {
                line: r.line,
                reason,
            }),
        }
    }
    (groups, errors)
}

/// Upserts one contact's rows in file order, adding it to the import's list.
async fn upsert_group(
    table: Arc<dyn Table>,
    tenant: String,
    list: Option<String>,
    rows: SameContact,
    now: Time,
) -> AppResult<GroupDone> {
    let mut ok = 0;
    let mut errs = Vec::new();
    let mut counts = BTreeMap::new();
    for (line, key, c) in rows {
        match upsert_keyed(&*table, &tenant, &key, c, now).await {
            Ok(u) => {
                if let Some(l) = &list {
                    repo::add_list_member(&*table, &tenant, l, &u.contact.phone).await?;
                }
                fold_counts(&mut counts, u.index_delta);
                ok += 1;
            }
            Err(AppError::Domain(e)) => errs.push(RowError {
                line,
                reason: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    Ok((ok, errs, counts))
}
