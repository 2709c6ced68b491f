//! Reports on a campaign (R6): the recount that repairs drifted statistics (R6.2), the CSV
//! export per contact with the funnel steps a bot flow reported (R6.3), and the cost
//! estimate from the template's category and the price table (R6.4).
//!
//! Everything here reads the hopper a page at a time (at most [`PAGE`] entries per shard
//! in memory), so memory stays bounded whatever the campaign's size. The recount and the
//! cost estimate walk the hopper shards concurrently ([`SHARD_CONCURRENCY`] at once)
//! within their request's budget; a campaign too large for it is walked in the
//! background ([`super::report_walks`], which also holds those two use cases). The export
//! walks the shards in order.

use super::{AppError, AppResult};
use crate::domain::campaign::{Campaign, CampaignStatus, Channel, TemplateRef};
use crate::domain::hopper::{shard_of, HopperEntry};
use crate::domain::ids::{CampaignId, TenantId};
use crate::domain::inbound::EntryRef;
use crate::domain::phone::PhoneNumber;
use crate::domain::pricing::{self, micros_to_amount, PriceCategory, PriceTable};
use crate::domain::stats::{self, Counters, Delta};
use crate::domain::{DomainError, Time};
use crate::ports::Table;
use crate::repo;
use crate::repo::commands::OperationKind;
use crate::repo::hopper_views::{walk_entries, HopperPosition, ReadBudget};
use crate::repo::reports::{put_step, steps_of, FunnelStep};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// Statistics recounts, funnel steps, exports and cost estimates (R6.3, R6.4).
pub struct Reports {
    pub ports: super::OperatorPorts,
    /// How long a recount or a cost estimate walks the hopper within its request; a
    /// campaign too large for that is walked in the background by the sweeper
    /// ([`super::report_walks`]; [`super::commands::ATTACH_INLINE`] by default).
    pub inline: Duration,
}

impl std::ops::Deref for Reports {
    type Target = super::OperatorPorts;
    fn deref(&self) -> &super::OperatorPorts {
        &self.ports
    }
}

/// Entries one read of the hopper returns.
pub const PAGE: usize = 1000;
/// Hopper shards the recount and the cost estimate read at once.
pub const SHARD_CONCURRENCY: usize = 4;
/// Longest funnel step name, in characters.
pub const MAX_STEP_CHARS: usize = 64;
/// Rows of one export chunk when `limit` is not given (about 2-3 MB, well under the
/// 6 MB a Lambda behind API Gateway may answer).
pub const DEFAULT_CHUNK_ROWS: u32 = 10_000;
/// Most rows one export chunk may ask for.
pub const MAX_CHUNK_ROWS: u32 = 20_000;

/// The export's columns, in order (R6.3).
pub const EXPORT_COLUMNS: [&str; 13] = [
    "phone",
    "name",
    "status",
    "disposition",
    "attempts",
    "sent_at",
    "delivered_at",
    "read_at",
    "replied_at",
    "reply",
    "error",
    "reason",
    "funnel",
];

fn budget() -> ReadBudget {
    ReadBudget {
        page_size: PAGE as u32,
        max_items: PAGE,
        max_queries: 40,
    }
}

// ---- walking the hopper ------------------------------------------------------------------

/// Folds every entry of the campaign into one accumulator per hopper shard, shards read
/// concurrently, each a page at a time; the accumulators in no particular order. `None`
/// when `deadline` passed first (the walk then goes on in the background).
pub(super) async fn fold_hopper<A, I, F>(
    table: &dyn Table,
    c: &Campaign,
    deadline: Option<Instant>,
    init: I,
    f: F,
) -> AppResult<Option<Vec<A>>>
where
    A: Send,
    I: Fn() -> A + Sync,
    F: Fn(&mut A, &HopperEntry) + Sync,
{
    let (init, f) = (&init, &f);
    let late = move || deadline.is_some_and(|d| Instant::now() >= d);
    let parts: Vec<Option<A>> = futures::stream::iter(0..c.hopper_shards.max(1))
        .map(|shard| async move {
            let mut acc = init();
            let mut from = Some(HopperPosition { shard, after: None });
            while let Some(pos) = from {
                if late() {
                    return Ok(None);
                }
                // Walking "shards 0..=shard" from `shard` reads this shard alone.
                let w = walk_entries(
                    table,
                    &c.tenant,
                    &c.id,
                    shard + 1,
                    pos,
                    |_| true,
                    PAGE,
                    budget(),
                )
                .await?;
                for e in &w.entries {
                    f(&mut acc, e);
                }
                from = w.next;
            }
            Ok::<Option<A>, AppError>(Some(acc))
        })
        .buffer_unordered(SHARD_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(parts.into_iter().collect())
}

/// Counts one entry into a recount's counters (the tally a background recount stores).
pub(super) fn count_entry(counters: &mut Counters, e: &HopperEntry) {
    for (k, v) in stats::delta(None, e) {
        *counters.entry(k.to_owned()).or_default() += v;
    }
}

/// Counts one entry into an estimate's [in the hopper, sent, delivered] per country: one
/// message, or on SMS the parts its message takes for its contact (what SMS is priced by).
pub(super) fn price_entry(
    by_country: &mut BTreeMap<String, [i64; 3]>,
    c: &Campaign,
    e: &HopperEntry,
) {
    let country = region_of(&e.phone).unwrap_or_else(|| UNKNOWN_COUNTRY.to_owned());
    let units = c.pace_units(&e.contact) as i64;
    let n = by_country.entry(country).or_default();
    n[0] += units;
    n[1] += units * i64::from(e.sent_at.is_some());
    n[2] += units * i64::from(e.delivered_at.is_some());
}

/// The counters a recount of every entry gives, walking the hopper page by page.
pub async fn recount_counters(table: &dyn Table, c: &Campaign) -> AppResult<(i64, Counters)> {
    let counted = recount_within(table, c, None).await?;
    Ok(counted.expect("a walk without a deadline finishes"))
}

/// [`recount_counters`], or `None` when `deadline` passes first.
pub(super) async fn recount_within(
    table: &dyn Table,
    c: &Campaign,
    deadline: Option<Instant>,
) -> AppResult<Option<(i64, Counters)>> {
    let parts = fold_hopper(
        table,
        c,
        deadline,
        || (0i64, Delta::new()),
        |(n, d): &mut (i64, Delta), e| {
            *n += 1;
            stats::fold(d, stats::delta(None, e));
        },
    )
    .await?;
    let Some(parts) = parts else {
        return Ok(None);
    };
    let mut entries = 0;
    let mut total = Delta::new();
    for (n, d) in parts {
        entries += n;
        stats::fold(&mut total, d);
    }
    Ok(Some((
        entries,
        total.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    )))
}

/// One walk over the campaign's hopper that began at `started` (see
/// [`stats::HopperWalk`]).
pub async fn walk_hopper(
    table: &dyn Table,
    c: &Campaign,
    started: Time,
) -> AppResult<stats::HopperWalk> {
    let parts = fold_hopper(table, c, None, stats::HopperWalk::default, |w, e| {
        w.add(e, started)
    })
    .await?
    .expect("a walk without a deadline finishes");
    let mut walk = stats::HopperWalk::default();
    for p in parts {
        walk.merge(p);
    }
    Ok(walk)
}

// ---- R6.2 recount and repair -------------------------------------------------------------

/// What a recount found and repaired.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Recount {
    /// Entries counted.
    pub entries: i64,
    /// The live counters before the repair (zero counters left out).
    pub before: BTreeMap<String, i64>,
    /// The counters now: the recount of the entries.
    pub after: BTreeMap<String, i64>,
    /// What the repair added to each counter that was off; empty when nothing drifted.
    pub difference: BTreeMap<String, i64>,
}

/// Why a recount may not run now: the campaign is RUNNING (its counters move with every
/// send) or a command is changing its entries (`running`: the kind of the campaign's
/// running operation).
pub(super) fn check_recount(c: &Campaign, running: Option<OperationKind>) -> AppResult<()> {
    let id = &c.id;
    if c.status == CampaignStatus::Running {
        return Err(DomainError::Conflict(format!(
            "campaign {id} is RUNNING: its counters move with every send; pause it, recount, then resume"
        ))
        .into());
    }
    match running {
        Some(k) if !k.is_report() => Err(DomainError::Conflict(format!(
            "campaign {id} has a {} walking its hopper; recount once it finishes",
            k.as_str()
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Repairs the live counters to equal `recounted` (the count of `entries` entries), unless
/// they moved since `before` (their non-zero values when the count began): 409 then.
/// Counters that already equal the recount are left alone (a background walk whose
/// finisher died after its repair: the repair is not added twice).
pub(super) async fn repair_to(
    t: &dyn Table,
    c: &Campaign,
    before: &Counters,
    entries: i64,
    recounted: &Counters,
) -> AppResult<Recount> {
    let (tenant, id) = (c.tenant.as_str(), c.id.as_str());
    let live = repo::get_counters(t, tenant, id).await?;
    let difference = stats::repair(before, recounted);
    if stats::nonzero(&live) == stats::nonzero(recounted) {
        return Ok(Recount {
            entries,
            before: before.clone(),
            after: stats::nonzero(recounted),
            difference,
        });
    }
    if *before != stats::nonzero(&live) {
        return Err(DomainError::Conflict(format!(
            "the counters of campaign {id} moved while its entries were counted (statuses or replies arriving); try again"
        ))
        .into());
    }
    repo::add_named_counters(t, tenant, id, &difference).await?;
    if !difference.is_empty() {
        tracing::warn!(campaign_id = %id, ?difference, "counters repaired to a recount");
    }
    Ok(Recount {
        entries,
        before: stats::nonzero(&live),
        after: stats::nonzero(recounted),
        difference,
    })
}

// ---- R6.3 funnel steps -------------------------------------------------------------------

/// `POST /campaigns/{id}/contacts/{phone}/steps`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// The step's name, 1 to 64 characters, no control characters and no `;` (the
    /// export's separator), e.g. `chose_plan`.
    pub step: String,
    /// When the contact reached the step (RFC 3339); now when absent. Kept to the
    /// millisecond; the same step at the same instant is recorded once.
    pub at: Option<DateTime<Utc>>,
}

/// A recorded funnel step.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"phone": "919812345678", "step": "chose_plan", "at": "2026-11-22T09:20:00Z", "recorded": true}))]
pub struct StepRecorded {
    pub phone: String,
    pub step: String,
    pub at: DateTime<Utc>,
    /// False when the same step at the same instant was already recorded.
    pub recorded: bool,
}

/// A step name as stored: trimmed, 1 to [`MAX_STEP_CHARS`] characters, no control
/// characters, no `;`.
pub fn check_step_name(step: &str) -> Result<String, DomainError> {
    let s = step.trim();
    if s.is_empty() {
        return Err(DomainError::invalid("step", "must not be empty"));
    }
    if s.chars().count() > MAX_STEP_CHARS {
        return Err(DomainError::invalid(
            "step",
            format!("must be at most {MAX_STEP_CHARS} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control() || c == ';') {
        return Err(DomainError::invalid(
            "step",
            "must not contain control characters or ';'",
        ));
    }
    Ok(s.to_owned())
}

/// Cut to whole milliseconds (the precision steps are keyed by).
fn to_millis(t: Time) -> Time {
    let ns = t.nanosecond() % 1_000_000_000;
    t.with_nanosecond(ns - ns % 1_000_000).unwrap_or(t)
}

// ---- R6.4 cost ---------------------------------------------------------------------------

/// Where the prices come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriceTableInfo {
    pub source: String,
    /// The date the prices are effective from.
    pub as_of: String,
    /// Whether the figures were checked against the source, and what was.
    pub verified: String,
}

/// The cost of the messages counted on one basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BasisCost {
    pub description: String,
    pub messages: i64,
    pub cost: f64,
}

/// One recipient country's messages and cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CountryCost {
    /// ISO 3166-1 region of the numbers (`unknown`: numbers no country claims).
    pub country: String,
    /// The price table row used: the country, or `default`.
    pub priced_as: String,
    /// Price of one message in this country and category.
    pub price: f64,
    pub target: i64,
    pub sent: i64,
    pub delivered: i64,
    pub cost_target: f64,
    pub cost_sent: f64,
    pub cost_delivered: f64,
}

/// Estimated cost of a campaign (R6.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CostEstimate {
    pub campaign_id: String,
    /// When the entries were read: now, or when the background walk of a large campaign
    /// finished (its estimate is kept for 10 minutes).
    pub counted_at: DateTime<Utc>,
    /// A WhatsApp campaign's template; absent on SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
    /// The template's category, which picks the price column; `SMS_PART` on SMS.
    pub category: PriceCategory,
    /// What `messages` counts: `message` (WhatsApp), or `message_part` on SMS, which is
    /// priced per part (each contact's message rendered for it).
    pub unit: String,
    pub currency: String,
    pub price_table: PriceTableInfo,
    /// Every entry of the hopper priced: the estimate for the whole audience.
    pub target: BasisCost,
    /// Messages sent so far.
    pub sent: BasisCost,
    /// Messages delivered so far: what Meta bills under per-message pricing.
    pub delivered: BasisCost,
    /// By recipient country, most messages first.
    pub countries: Vec<CountryCost>,
}

/// Name of a country in the estimate: the number's region, or `unknown`.
pub const UNKNOWN_COUNTRY: &str = "unknown";

// ---- the use cases -----------------------------------------------------------------------

impl Reports {
    /// Records a funnel step a bot flow reached with a contact of the campaign (R6.3).
    pub async fn record_step(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        phone: &str,
        req: StepRequest,
    ) -> AppResult<StepRecorded> {
        let step = check_step_name(&req.step)?;
        let c = self.load(tenant, id).await?;
        let not_in_hopper = || DomainError::not_found("contact in the campaign's hopper", phone);
        let phone = PhoneNumber::parse(phone).map_err(|_| not_in_hopper())?;
        let r = EntryRef {
            tenant: tenant.to_string(),
            campaign_id: id.to_string(),
            shard: shard_of(&phone, c.hopper_shards),
            phone: phone.clone(),
        };
        if repo::get_entry(&*self.table, &r).await?.is_none() {
            return Err(not_in_hopper().into());
        }
        let s = FunnelStep {
            phone: phone.as_str().to_owned(),
            step,
            at: to_millis(req.at.unwrap_or_else(|| self.clock.now())),
        };
        let recorded = put_step(&*self.table, tenant, id, r.shard, &s).await?;
        Ok(StepRecorded {
            phone: s.phone,
            step: s.step,
            at: s.at,
            recorded,
        })
    }

    /// The campaign an export reads (404 when unknown), checked before the answer starts.
    pub async fn export_campaign(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<Campaign> {
        self.load(tenant, id).await
    }

    /// One chunk of the export: from `cursor` (the start, with the header row, when
    /// absent), at most `rows` rows; the cursor of the next chunk, `None` after the last.
    /// For API Gateway and Lambda, whose answers are at most 6 MB and 29 s.
    pub async fn export_chunk(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        cursor: Option<&str>,
        rows: Option<u32>,
    ) -> AppResult<(Bytes, Option<String>)> {
        let rows = match rows {
            None => DEFAULT_CHUNK_ROWS,
            Some(n) if (1..=MAX_CHUNK_ROWS).contains(&n) => n,
            Some(_) => {
                return Err(DomainError::invalid(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_CHUNK_ROWS}"),
                )
                .into())
            }
        };
        let bad_cursor = || DomainError::invalid("cursor", "is not a cursor this export returned");
        let from = match cursor {
            None => None,
            Some(s) => Some(HopperPosition::decode(s).ok_or_else(bad_cursor)?),
        };
        let c = self.load(tenant, id).await?;
        if from.as_ref().is_some_and(|p| p.shard >= c.hopper_shards) {
            return Err(bad_cursor().into());
        }
        let mut out = Vec::new();
        if from.is_none() {
            out.extend_from_slice(&header_row());
        }
        let mut pos = Some(from.unwrap_or_else(HopperPosition::start));
        let mut left = rows as usize;
        while let (Some(p), true) = (pos.clone(), left > 0) {
            let (bytes, n, next) = export_page(&*self.table, &c, p, left.min(PAGE)).await?;
            out.extend_from_slice(&bytes);
            left -= n;
            pos = next;
        }
        Ok((Bytes::from(out), pos.map(|p| p.encode())))
    }
}

/// What a campaign's messages are priced by.
pub(super) struct PriceBasis {
    /// A WhatsApp campaign's template; none on SMS.
    pub template: Option<TemplateRef>,
    pub category: PriceCategory,
    pub table: &'static PriceTable,
}

/// What a campaign's messages are priced by: a WhatsApp campaign's template and its
/// category in the WhatsApp table; an SMS campaign's parts in the SMS table; 409 for a
/// voice campaign or a WhatsApp campaign without a template yet.
pub(super) async fn price_basis(t: &dyn Table, c: &Campaign) -> AppResult<PriceBasis> {
    let id = &c.id;
    match c.channel {
        Channel::Whatsapp => {}
        Channel::Sms => {
            return Ok(PriceBasis {
                template: None,
                category: PriceCategory::SmsPart,
                table: pricing::sms(),
            })
        }
        Channel::Voice => {
            return Err(DomainError::Conflict(format!(
                "campaign {id} is on the voice channel; the price tables cover WhatsApp and SMS"
            ))
            .into())
        }
    }
    let (Some(tref), Some(account)) = (c.template.clone(), c.account_id.clone()) else {
        return Err(DomainError::Conflict(format!(
            "campaign {id} has no template and account yet; the cost comes from the template's category"
        ))
        .into());
    };
    let template =
        repo::templates::get_template(t, &c.tenant, &account, &tref.name, &tref.language)
            .await?
            .ok_or_else(|| {
                DomainError::Conflict(format!(
                    "template {} ({}) of campaign {id} does not exist",
                    tref.name, tref.language
                ))
            })?;
    Ok(PriceBasis {
        template: Some(tref),
        category: PriceCategory::from(template.category),
        table: pricing::whatsapp(),
    })
}

/// The number's region, as [`PhoneNumber::region`] answers it, without parsing the number
/// when its calling code belongs to one region only: libphonenumber then names that region
/// whatever digits follow (only shared codes such as +1, +7, +44 look further). A cost
/// estimate asks this for every entry, and parsing costs microseconds each. (A number
/// libphonenumber refuses as too short for its country still gets its code's region here,
/// which is how Meta prices: by calling code.)
pub fn region_of(phone: &PhoneNumber) -> Option<String> {
    let d = phone.as_str();
    if !phone.is_dialable() {
        return None;
    }
    // Calling codes are prefix-free: the first prefix that is a code is the code.
    for len in 1..=3.min(d.len()) {
        let Ok(code) = d[..len].parse::<u16>() else {
            break;
        };
        if let Some(regions) = phonenumber::metadata::DATABASE.region(&code) {
            if let [only] = regions.as_slice() {
                if *only != "001" {
                    return Some((*only).to_owned());
                }
            }
            break;
        }
    }
    phone.region()
}

/// Prices counts per country with the WhatsApp price table; `counted_at`: when the
/// entries were read.
pub(super) fn estimate(
    c: &Campaign,
    basis: PriceBasis,
    by_country: BTreeMap<String, [i64; 3]>,
    counted_at: Time,
) -> CostEstimate {
    let PriceBasis {
        template,
        category,
        table,
    } = basis;
    let sms = category == PriceCategory::SmsPart;
    let mut totals = [(0i64, 0i64); 3];
    let mut countries: Vec<CountryCost> = by_country
        .into_iter()
        .map(|(country, n)| {
            let region = (country != UNKNOWN_COUNTRY).then_some(country.as_str());
            let (priced_as, price) = table.price(region, category);
            for i in 0..3 {
                totals[i].0 += n[i];
                totals[i].1 += n[i] * price;
            }
            CountryCost {
                priced_as: priced_as.to_owned(),
                price: micros_to_amount(price),
                target: n[0],
                sent: n[1],
                delivered: n[2],
                cost_target: micros_to_amount(n[0] * price),
                cost_sent: micros_to_amount(n[1] * price),
                cost_delivered: micros_to_amount(n[2] * price),
                country,
            }
        })
        .collect();
    countries.sort_by(|a, b| b.target.cmp(&a.target).then(a.country.cmp(&b.country)));
    let basis = |i: usize, description: &str| BasisCost {
        description: description.to_owned(),
        messages: totals[i].0,
        cost: micros_to_amount(totals[i].1),
    };
    let (what, billed) = match sms {
        true => ("message parts", "parts delivered so far"),
        false => (
            "messages",
            "messages delivered so far: what Meta bills under per-message pricing",
        ),
    };
    CostEstimate {
        counted_at,
        campaign_id: c.id.clone(),
        template,
        category,
        unit: if sms { "message_part" } else { "message" }.to_owned(),
        currency: table.currency.clone(),
        price_table: PriceTableInfo {
            source: table.source.clone(),
            as_of: table.as_of.clone(),
            verified: table.verified.clone(),
        },
        target: basis(
            0,
            &format!("estimate for the whole audience: every contact in the hopper, as if each message were sent and delivered ({what})"),
        ),
        sent: basis(1, &format!("{what} sent so far")),
        delivered: basis(2, billed),
        countries,
    }
}

// ---- the CSV export ----------------------------------------------------------------------

fn header_row() -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = w.write_record(EXPORT_COLUMNS);
    w.into_inner().unwrap_or_default()
}

fn time(t: Option<Time>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// A text a customer, a bot or a provider wrote, made safe to open in a spreadsheet: one
/// starting like a formula (`=`, `+`, `-`, `@`, tab, carriage return) gets a leading `'`.
pub fn cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The `funnel` column: `step@time;step@time`, in time order.
fn funnel(steps: Option<&Vec<FunnelStep>>) -> String {
    steps
        .map(|s| {
            s.iter()
                .map(|s| format!("{}@{}", s.step, time(Some(s.at))))
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default()
}

/// The `read_at` cell of a campaign whose channel reports no reads (SMS): not a blank,
/// which would read as "not read yet".
pub const NOT_REPORTED: &str = "n/a";

fn row(e: &HopperEntry, steps: Option<&Vec<FunnelStep>>, reads: bool) -> [String; 13] {
    let opt = |s: &Option<String>| cell(s.as_deref().unwrap_or("")).into_owned();
    let reply = e
        .reply
        .as_ref()
        .and_then(|r| r.text.clone().or_else(|| r.button.clone()));
    [
        e.phone.as_str().to_owned(),
        opt(&e.contact.name),
        e.state.as_str().to_owned(),
        opt(&e.disposition),
        e.attempts.to_string(),
        time(e.sent_at),
        time(e.delivered_at),
        if reads {
            time(e.read_at)
        } else {
            NOT_REPORTED.to_owned()
        },
        time(e.replied_at),
        opt(&reply),
        opt(&e.error),
        opt(&e.reason),
        cell(&funnel(steps)).into_owned(),
    ]
}

/// One page of export rows from `from`: the CSV bytes, the rows written, and where the
/// next page starts (`None` after the last entry).
async fn export_page(
    table: &dyn Table,
    c: &Campaign,
    from: HopperPosition,
    limit: usize,
) -> AppResult<(Bytes, usize, Option<HopperPosition>)> {
    let w = walk_entries(
        table,
        &c.tenant,
        &c.id,
        c.hopper_shards,
        from,
        |_| true,
        limit,
        budget(),
    )
    .await?;
    // A page may span shards: the steps of each shard's part are one range read.
    let mut phones: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for e in &w.entries {
        phones
            .entry(e.shard)
            .or_default()
            .insert(e.phone.as_str().to_owned());
    }
    let mut steps: BTreeMap<String, Vec<FunnelStep>> = BTreeMap::new();
    for (shard, p) in &phones {
        steps.extend(steps_of(table, &c.tenant, &c.id, *shard, p).await?);
    }
    let mut out = csv::Writer::from_writer(Vec::with_capacity(w.entries.len() * 200));
    for e in &w.entries {
        out.write_record(row(
            e,
            steps.get(e.phone.as_str()),
            c.channel.reports_reads(),
        ))
        .map_err(|err| crate::ports::PortError::Backend(format!("csv: {err}")))?;
    }
    let bytes = out
        .into_inner()
        .map_err(|err| crate::ports::PortError::Backend(format!("csv: {err}")))?;
    Ok((Bytes::from(bytes), w.entries.len(), w.next))
}

/// The whole export as a stream of CSV chunks, one per page of entries, the header row
/// first: what `GET /campaigns/{id}/export.csv` streams. An error after the answer
/// started ends the stream with it (the client sees a cut connection, not a short file
/// that looks complete).
pub fn export_stream(
    table: Arc<dyn Table>,
    c: Campaign,
) -> impl Stream<Item = AppResult<Bytes>> + Send + 'static {
    enum Next {
        Header,
        Page(HopperPosition),
        End,
    }
    futures::stream::unfold((table, c, Next::Header), |(table, c, next)| async move {
        match next {
            Next::End => None,
            Next::Header => Some((
                Ok(Bytes::from(header_row())),
                (table, c, Next::Page(HopperPosition::start())),
            )),
            Next::Page(p) => match export_page(&*table, &c, p, PAGE).await {
                Ok((bytes, _, next)) => {
                    let next = next.map_or(Next::End, Next::Page);
                    Some((Ok(bytes), (table, c, next)))
                }
                Err(e) => Some((Err(e), (table, c, Next::End))),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r6_3_step_names_are_checked() {
        assert_eq!(check_step_name("  chose_plan ").unwrap(), "chose_plan");
        for bad in ["", "   ", "a;b", "a\nb", &"x".repeat(65)] {
            let e = check_step_name(bad).unwrap_err();
            assert!(
                matches!(&e, DomainError::Invalid { field, .. } if field == "step"),
                "{bad:?}: {e}"
            );
        }
        assert!(check_step_name(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn r6_3_cells_that_look_like_formulas_are_neutralised() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+1 yes"), "'+1 yes");
        assert_eq!(cell("Yes"), "Yes");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn r6_4_region_of_agrees_with_libphonenumber() {
        let mut checked = 0;
        for code in 1..1000u32 {
            for rest in [
                "0",
                "1234567",
                "2015550123",
                "7400123456",
                "891640123",
                "9876543210",
            ] {
                let Ok(p) = PhoneNumber::parse(&format!("{code}{rest}")) else {
                    continue;
                };
                assert_eq!(region_of(&p), p.region(), "{p:?}");
                checked += 1;
            }
        }
        assert!(checked > 5000, "{checked}");
    }

    #[test]
    fn r6_3_step_times_keep_milliseconds() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-22T09:20:00.123456789Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(time(Some(to_millis(t))), "2026-11-22T09:20:00.123Z");
    }
}
