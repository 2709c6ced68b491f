//! Bulk import of contacts from CSV (R2.4): how a header maps columns onto contact
//! attributes, how a row becomes a [`NewContact`], and the import job with its counts and
//! checkpoint.
//!
//! **Header rules** (names compared trimmed and without case): `phone`, `mobile`, `name`,
//! `email`; `tags` (several separated by `;`); `tag:<key>` for a valued tag; any other
//! column is a custom field named as in the header. An explicit mapping (column name ->
//! `phone` | `mobile` | `name` | `email` | `tags` | `tag:<key>` | `field:<name>` |
//! `ignore`) overrides the rule for the columns it names; the others follow the rules;
//! columns with an empty name are ignored.
//! Empty cells are left out of the row, so they never clear stored values (see
//! [`super::contact`] for the upsert rules). A row with more values than the header has
//! columns is invalid; a shorter row is read as if the missing cells were empty.

use super::contact::NewContact;
use super::{new_id, DomainError, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where one CSV column goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "to", content = "name", rename_all = "snake_case")]
pub enum Column {
    Phone,
    Mobile,
    Name,
    Email,
    Tags,
    ValuedTag(String),
    Field(String),
    Ignore,
}

/// The separator between several tags in one `tags` cell.
pub const TAG_SEPARATOR: char = ';';
/// Invalid rows stored with their reason per import; beyond this they are only counted.
pub const MAX_STORED_ERRORS: u64 = 1000;
/// Data rows one import may hold (the seed's largest lists are a million contacts).
pub const MAX_IMPORT_ROWS: u64 = 5_000_000;
/// Bytes of file one import may read: 1 GiB, about five million rows of a wide export.
pub const MAX_IMPORT_BYTES: u64 = 1 << 30;

/// An import that would hold more than `max_rows` data rows or read past `max_bytes` of
/// its file fails as a whole, naming the cap (what it stored before stays).
pub fn check_caps(rows: u64, bytes: u64, max_rows: u64, max_bytes: u64) -> Result<(), DomainError> {
    if rows > max_rows {
        return Err(DomainError::invalid(
            "file",
            format!("has more than {max_rows} rows, the most one import holds: split it"),
        ));
    }
    if bytes > max_bytes {
        return Err(DomainError::invalid(
            "file",
            format!("is larger than {max_bytes} bytes, the most one import reads: split it"),
        ));
    }
    Ok(())
}

fn parse_target(field: &str, target: &str) -> Result<Column, DomainError> {
    let t = target.trim();
    let lower = t.to_lowercase();
    Ok(match lower.as_str() {
        "phone" => Column::Phone,
        "mobile" => Column::Mobile,
        "name" => Column::Name,
        "email" => Column::Email,
        "tags" => Column::Tags,
        "ignore" => Column::Ignore,
        _ => {
            if let Some(k) = lower.strip_prefix("tag:") {
                Column::ValuedTag(super::contact::normalise_tag(k).map_err(|e| match e {
                    DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
                    o => o,
                })?)
            } else if let Some(f) = t.get(6..).filter(|_| lower.starts_with("field:")) {
                if f.trim().is_empty() {
                    return Err(DomainError::invalid(field, "field: needs a name"));
                }
                Column::Field(f.trim().to_owned())
            } else {
                return Err(DomainError::invalid(
                    field,
                    format!(
                        "unknown target '{t}': use phone, mobile, name, email, tags, \
                         tag:<key>, field:<name> or ignore"
                    ),
                ));
            }
        }
    })
}

/// Checks an explicit mapping's targets before any file is read (errors name
/// `mapping.<column>`).
pub fn check_mapping(m: &BTreeMap<String, String>) -> Result<(), DomainError> {
    for (col, target) in m {
        parse_target(&format!("mapping.{col}"), target)?;
    }
    Ok(())
}

/// The columns of one CSV file, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColumnMap {
    pub columns: Vec<Column>,
}

impl ColumnMap {
    /// Maps a header row, applying `explicit` (column name -> target) where it names a
    /// column. Errors name `header` or `mapping.<column>`.
    pub fn from_header(
        header: &[String],
        explicit: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, DomainError> {
        let norm = |s: &str| {
            s.trim()
                .trim_start_matches('\u{feff}')
                .trim()
                .to_lowercase()
        };
        if let Some(m) = explicit {
            for col in m.keys() {
                if !header.iter().any(|h| norm(h) == norm(col)) {
                    return Err(DomainError::invalid(
                        format!("mapping.{col}"),
                        "the header has no such column",
                    ));
                }
            }
        }
        let mut columns = Vec::with_capacity(header.len());
        for h in header {
            let name = h.trim().trim_start_matches('\u{feff}').trim();
            let given = explicit.and_then(|m| m.iter().find(|(k, _)| norm(k) == norm(name)));
            let col = match given {
                Some((k, target)) => parse_target(&format!("mapping.{k}"), target)?,
                // Spreadsheets export trailing unnamed columns; they carry nothing.
                None if name.is_empty() => Column::Ignore,
                None => match norm(name).as_str() {
                    "phone" | "mobile" | "name" | "email" | "tags" => parse_target("header", name)?,
                    n if n.starts_with("tag:") => parse_target("header", name)?,
                    _ => Column::Field(name.to_owned()),
                },
            };
            if col != Column::Ignore && columns.contains(&col) {
                return Err(DomainError::invalid(
                    "header",
                    format!("two columns map to {col:?}; map one of them to ignore"),
                ));
            }
            columns.push(col);
        }
        if !columns
            .iter()
            .any(|c| matches!(c, Column::Phone | Column::Mobile))
        {
            return Err(DomainError::invalid(
                "header",
                "no phone or mobile column (the first row must be a header naming the columns)",
            ));
        }
        Ok(ColumnMap { columns })
    }

    /// Turns one row's cells into a contact input. Empty cells are left out.
    pub fn row<'a>(
        &self,
        cells: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<NewContact, String> {
        if cells.len() > self.columns.len() {
            return Err(format!(
                "has {} values but the header has {} columns",
                cells.len(),
                self.columns.len()
            ));
        }
        let mut c = NewContact::default();
        for (col, cell) in self.columns.iter().zip(cells) {
            let v = cell.trim();
            if v.is_empty() {
                continue;
            }
            match col {
                Column::Phone => c.phone = Some(v.to_owned()),
                Column::Mobile => c.mobile = Some(v.to_owned()),
                Column::Name => c.name = Some(v.to_owned()),
                Column::Email => c.email = Some(v.to_owned()),
                Column::Tags => {
                    c.tags = Some(
                        v.split(TAG_SEPARATOR)
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                Column::ValuedTag(k) => {
                    c.valued_tags
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k.clone(), Some(v.to_owned()));
                }
                Column::Field(f) => {
                    c.fields
                        .get_or_insert_with(BTreeMap::new)
                        .insert(f.clone(), Some(v.to_owned()));
                }
                Column::Ignore => {}
            }
        }
        if c.phone.is_none() && c.mobile.is_none() {
            return Err("phone: is empty (and so is mobile)".into());
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImportStatus {
    /// Created with an upload URL; waiting for the file.
    AwaitingUpload,
    Running,
    Completed,
    /// The file could not be read at all (no header, no phone column, gone).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportSource {
    /// `POST /contacts/import` with the CSV as the body.
    Inline,
    /// `POST /imports`, then a PUT to the upload URL.
    Upload,
}

/// One bulk import and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Import {
    pub id: String,
    pub tenant: String,
    pub source: ImportSource,
    pub status: ImportStatus,
    /// Add every imported contact to this list.
    pub list_id: Option<String>,
    /// The explicit mapping given with the request, if any.
    #[serde(default)]
    pub mapping: Option<BTreeMap<String, String>>,
    /// The column map, once the header was read.
    #[serde(default)]
    pub columns: Option<ColumnMap>,
    /// Data rows read (the header is not a row).
    #[serde(default)]
    pub rows: u64,
    /// Rows stored as contacts.
    #[serde(default)]
    pub imported: u64,
    /// Rows rejected; each is reported with its line number while fewer than
    /// [`MAX_STORED_ERRORS`] were stored.
    #[serde(default)]
    pub invalid: u64,
    #[serde(default)]
    pub errors_stored: u64,
    /// Why the import failed as a whole.
    pub failure: Option<String>,
    /// Checkpoint: byte offset in the object where the rows not yet processed start (after
    /// the header or a row, at its line end: a run going on from here reads it whole).
    #[serde(default)]
    pub offset: u64,
    /// Checkpoint: file line number (1 = header) at `offset`.
    #[serde(default)]
    pub line: u64,
    /// How many function invocations have worked on it.
    #[serde(default)]
    pub invocations: u32,
    /// Who works on it until when (one worker at a time; S3 may deliver an event twice).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_until: Option<Time>,
    #[serde(default)]
    pub lease_owner: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Time>,
    #[serde(default)]
    pub version: u64,
}

impl Import {
    pub fn new(
        tenant: &str,
        source: ImportSource,
        list_id: Option<String>,
        mapping: Option<BTreeMap<String, String>>,
        now: Time,
    ) -> Self {
        Import {
            id: new_id("imp"),
            tenant: tenant.to_owned(),
            source,
            status: match source {
                ImportSource::Inline => ImportStatus::Running,
                ImportSource::Upload => ImportStatus::AwaitingUpload,
            },
            list_id,
            mapping,
            columns: None,
            rows: 0,
            imported: 0,
            invalid: 0,
            errors_stored: 0,
            failure: None,
            offset: 0,
            line: 1,
            invocations: 0,
            lease_until: None,
            lease_owner: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            version: 0,
        }
    }

    /// The object key of an upload: `imports/<tenant>/<id>.csv`.
    pub fn object_key(&self) -> String {
        object_key(&self.tenant, &self.id)
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.status, ImportStatus::Completed | ImportStatus::Failed)
    }

    /// Takes the job for `owner` until `until`, unless another worker holds it.
    pub fn claim(&mut self, owner: &str, until: Time, now: Time) -> Result<(), DomainError> {
        if self.is_finished() {
            return Err(DomainError::Conflict(format!(
                "import {} is already {:?}",
                self.id, self.status
            )));
        }
        if let (Some(t), Some(o)) = (self.lease_until, &self.lease_owner) {
            if t > now && o != owner {
                return Err(DomainError::Conflict(format!(
                    "import {} is being worked on until {t}",
                    self.id
                )));
            }
        }
        self.status = ImportStatus::Running;
        self.lease_owner = Some(owner.to_owned());
        self.lease_until = Some(until);
        self.invocations += 1;
        self.updated_at = now;
        Ok(())
    }

    pub fn release(&mut self, now: Time) {
        self.lease_owner = None;
        self.lease_until = None;
        self.updated_at = now;
    }

    pub fn complete(&mut self, now: Time) {
        self.status = ImportStatus::Completed;
        self.finished_at = Some(now);
        self.release(now);
    }

    pub fn fail(&mut self, why: String, now: Time) {
        self.status = ImportStatus::Failed;
        self.failure = Some(why);
        self.finished_at = Some(now);
        self.release(now);
    }
}

pub fn object_key(tenant: &str, id: &str) -> String {
    format!("imports/{tenant}/{id}.csv")
}

/// The (tenant, import id) an upload's object key names, if it is one.
pub fn parse_object_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix("imports/")?;
    let (tenant, file) = rest.split_once('/')?;
    let id = file.strip_suffix(".csv")?;
    let safe = |s: &str| super::ids::safe(s, 64);
    (safe(tenant) && safe(id) && id.starts_with("imp_")).then(|| (tenant.to_owned(), id.to_owned()))
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"line": 7, "reason": "phone: +9112345 is not a valid number for IN (country code +91)"}))]
pub struct RowError {
    /// Line of the file where the row starts (the header is line 1).
    pub line: u64,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn r2_4_header_maps_columns_to_fields() {
        let m = ColumnMap::from_header(
            &header(&[
                "\u{feff}Phone",
                "Name",
                "EMAIL",
                "tags",
                "tag:City",
                "code",
                "mobile",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            m.columns,
            vec![
                Column::Phone,
                Column::Name,
                Column::Email,
                Column::Tags,
                Column::ValuedTag("city".into()),
                Column::Field("code".into()),
                Column::Mobile
            ]
        );
        let row = m
            .row(
                [
                    "+91 98123 45678",
                    "Asha",
                    "",
                    "vip; gold;",
                    "Pune",
                    "X1",
                    "",
                ]
                .into_iter(),
            )
            .unwrap();
        assert_eq!(row.phone.as_deref(), Some("+91 98123 45678"));
        assert_eq!(row.email, None, "empty cells are left out");
        assert_eq!(row.tags, Some(vec!["vip".to_string(), "gold".to_string()]));
        assert_eq!(row.valued_tags.unwrap()["city"].as_deref(), Some("Pune"));
        assert_eq!(row.fields.unwrap()["code"].as_deref(), Some("X1"));
        assert!(m
            .row(["1", "2", "3", "4", "5", "6", "7", "8"].into_iter())
            .is_err());
        assert!(m.row(["", "Asha"].into_iter()).is_err());
    }

    #[test]
    fn r2_4_explicit_mapping_overrides_the_header_rules() {
        let mapping: BTreeMap<String, String> = [
            ("Mobile No".to_string(), "phone".to_string()),
            ("Internal".to_string(), "ignore".to_string()),
            ("Town".to_string(), "tag:city".to_string()),
        ]
        .into();
        let m = ColumnMap::from_header(
            &header(&["Mobile No", "Internal", "Town", "Notes"]),
            Some(&mapping),
        )
        .unwrap();
        assert_eq!(
            m.columns,
            vec![
                Column::Phone,
                Column::Ignore,
                Column::ValuedTag("city".into()),
                Column::Field("Notes".into())
            ]
        );
        let err = ColumnMap::from_header(&header(&["name"]), None).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "header"));
        let bad: BTreeMap<String, String> = [("Nope".to_string(), "phone".to_string())].into();
        let err = ColumnMap::from_header(&header(&["phone"]), Some(&bad)).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "mapping.Nope"));
        let err = ColumnMap::from_header(&header(&["phone", "Phone"]), None).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "header"));
    }

    #[test]
    fn r2_4_object_keys_round_trip_and_reject_others() {
        let k = object_key("acme", "imp_0123");
        assert_eq!(
            parse_object_key(&k),
            Some(("acme".into(), "imp_0123".into()))
        );
        assert_eq!(parse_object_key("imports/acme/../x.csv"), None);
        assert_eq!(parse_object_key("other/acme/imp_1.csv"), None);
    }

    #[test]
    fn r2_4_one_worker_holds_an_import_at_a_time() {
        let now = chrono::Utc::now();
        let mut i = Import::new("t", ImportSource::Upload, None, None, now);
        i.claim("a", now + chrono::Duration::minutes(15), now)
            .unwrap();
        assert!(i
            .claim("b", now + chrono::Duration::minutes(15), now)
            .is_err());
        i.release(now);
        i.claim("b", now + chrono::Duration::minutes(15), now)
            .unwrap();
        i.complete(now);
        assert!(i.claim("c", now, now).is_err());
    }
}
