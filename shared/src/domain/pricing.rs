//! WhatsApp prices per message, by recipient country and template category (R6.4), and
//! SMS prices per message part by recipient country (issue 16): each table is a data file
//! (`shared/data/whatsapp_prices.csv`, `shared/data/sms_prices.csv`) carrying its own
//! source and date in `# source:` / `# as_of:` comment lines, compiled in and parsed once.
//!
//! Prices are kept in micro-units of the currency (1e-6), so sums of many messages stay
//! exact; the data file has at most six decimals.

use super::template::Category;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::ToSchema;

/// The data file, as compiled in.
pub const WHATSAPP_PRICES_CSV: &str = include_str!("../../data/whatsapp_prices.csv");
/// The SMS data file, as compiled in.
pub const SMS_PRICES_CSV: &str = include_str!("../../data/sms_prices.csv");
/// The row that prices every country without its own.
pub const DEFAULT_COUNTRY: &str = "default";

/// The categories Meta prices (templates are MARKETING, UTILITY or AUTHENTICATION;
/// SERVICE is a free-form message inside a customer-service window), and SMS_PART, one
/// part of an SMS, which the SMS providers price.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PriceCategory {
    Marketing,
    Utility,
    Authentication,
    Service,
    SmsPart,
}

impl PriceCategory {
    pub const ALL: [PriceCategory; 5] = [
        PriceCategory::Marketing,
        PriceCategory::Utility,
        PriceCategory::Authentication,
        PriceCategory::Service,
        PriceCategory::SmsPart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PriceCategory::Marketing => "MARKETING",
            PriceCategory::Utility => "UTILITY",
            PriceCategory::Authentication => "AUTHENTICATION",
            PriceCategory::Service => "SERVICE",
            PriceCategory::SmsPart => "SMS_PART",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl From<Category> for PriceCategory {
    fn from(c: Category) -> Self {
        match c {
            Category::Marketing => PriceCategory::Marketing,
            Category::Utility => PriceCategory::Utility,
            Category::Authentication => PriceCategory::Authentication,
        }
    }
}

/// A price table: where its figures come from, as of when, and the price per message by
/// country and category, in micro-units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    pub source: String,
    /// The date the prices are effective from (`YYYY-MM-DD`).
    pub as_of: String,
    /// Whether the figures were checked against the source (`# verified:` line).
    pub verified: String,
    pub currency: String,
    prices: BTreeMap<(String, PriceCategory), i64>,
}

/// Micro-units from a decimal text (`0.0107` → 10_700); at most six decimals.
pub fn parse_micros(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !(frac.is_empty() || digits(frac)) || frac.len() > 6 || int.len() > 9 {
        return Err(format!(
            "'{s}' is not a price (digits, at most six decimals)"
        ));
    }
    let int: i64 = int.parse().map_err(|_| format!("'{s}' is not a price"))?;
    let frac_micros: i64 = format!("{frac:0<6}")
        .parse()
        .map_err(|_| format!("'{s}' is not a price"))?;
    Ok(int * 1_000_000 + frac_micros)
}

/// Micro-units as a decimal number of the currency.
pub fn micros_to_amount(m: i64) -> f64 {
    m as f64 / 1_000_000.0
}

impl PriceTable {
    /// Parses the data file: `# key: value` comment lines (`source`, `as_of`, `verified`
    /// are required), then CSV with the header `country,category,currency,price`. Every
    /// row has the same currency; every country (and `default`) prices every category the
    /// table prices.
    pub fn parse(text: &str) -> Result<PriceTable, String> {
        let mut meta: BTreeMap<&str, String> = BTreeMap::new();
        for line in text.lines() {
            if let Some(c) = line.strip_prefix('#') {
                if let Some((k, v)) = c.split_once(':') {
                    let k = k.trim();
                    if matches!(k, "source" | "as_of" | "verified") {
                        meta.insert(k, v.trim().to_owned());
                    }
                }
            }
        }
        let need = |k: &str| {
            meta.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("the price table has no '# {k}:' line"))
        };
        let (source, as_of, verified) = (need("source")?, need("as_of")?, need("verified")?);
        if chrono::NaiveDate::parse_from_str(&as_of, "%Y-%m-%d").is_err() {
            return Err(format!("as_of '{as_of}' is not a date (YYYY-MM-DD)"));
        }
        let mut rdr = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .map(str::to_owned)
            .collect();
        if header != ["country", "category", "currency", "price"] {
            return Err(format!(
                "header {header:?}: expected country,category,currency,price"
            ));
        }
        let mut currency: Option<String> = None;
        let mut prices = BTreeMap::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| e.to_string())?;
            let line = rec.position().map_or(i as u64 + 2, |p| p.line());
            let at = |m: String| format!("line {line}: {m}");
            let country = rec.get(0).unwrap_or("").to_owned();
            let valid_country = country == DEFAULT_COUNTRY
                || (country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
            if !valid_country {
                return Err(at(format!(
                    "country '{country}' is neither an ISO region (two capitals) nor '{DEFAULT_COUNTRY}'"
                )));
            }
            let cat = rec.get(1).unwrap_or("");
            let category =
                PriceCategory::parse(cat).ok_or_else(|| at(format!("unknown category '{cat}'")))?;
            let cur = rec.get(2).unwrap_or("");
            if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(at(format!("currency '{cur}' is not an ISO 4217 code")));
            }
            match &currency {
                None => currency = Some(cur.to_owned()),
                Some(c) if c != cur => {
                    return Err(at(format!("currency {cur}, but earlier rows are in {c}")))
                }
                Some(_) => {}
            }
            let micros = parse_micros(rec.get(3).unwrap_or("")).map_err(at)?;
            if prices.insert((country.clone(), category), micros).is_some() {
                return Err(at(format!("{country} {} appears twice", category.as_str())));
            }
        }
        let countries: Vec<&String> = {
            let mut c: Vec<&String> = prices.keys().map(|(c, _)| c).collect();
            c.dedup();
            c
        };
        if !countries.iter().any(|c| *c == DEFAULT_COUNTRY) {
            return Err(format!("no '{DEFAULT_COUNTRY}' rows"));
        }
        let categories: std::collections::BTreeSet<PriceCategory> =
            prices.keys().map(|(_, cat)| *cat).collect();
        for c in &countries {
            for cat in categories.iter().copied() {
                if !prices.contains_key(&((*c).clone(), cat)) {
                    return Err(format!("{c} has no {} price", cat.as_str()));
                }
            }
        }
        Ok(PriceTable {
            source,
            as_of,
            verified,
            currency: currency.ok_or("the price table has no rows")?,
            prices,
        })
    }

    /// The price of one message to a number of `region` (`None`: a number no country
    /// claims) in `category`: the row that priced it (the region, or `default`) and the
    /// price in micro-units.
    pub fn price(&self, region: Option<&str>, category: PriceCategory) -> (&str, i64) {
        if let Some(r) = region {
            if let Some(((c, _), p)) = self.prices.get_key_value(&(r.to_owned(), category)) {
                return (c.as_str(), *p);
            }
        }
        let p = self
            .prices
            .get(&(DEFAULT_COUNTRY.to_owned(), category))
            .copied()
            .unwrap_or(0);
        (DEFAULT_COUNTRY, p)
    }

    /// The countries with their own rows (`default` last).
    pub fn countries(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self
            .prices
            .keys()
            .map(|(c, _)| c.as_str())
            .filter(|c| *c != DEFAULT_COUNTRY)
            .collect();
        c.dedup();
        c.push(DEFAULT_COUNTRY);
        c
    }
}

/// The SMS price table (per message part) compiled from its data file; the unit tests
/// prove it parses.
pub fn sms() -> &'static PriceTable {
    static TABLE: OnceLock<PriceTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        PriceTable::parse(SMS_PRICES_CSV)
            .unwrap_or_else(|e| panic!("shared/data/sms_prices.csv: {e}"))
    })
}

/// The WhatsApp price table compiled from the data file. The unit tests prove it parses,
/// so this never fails at run time.
pub fn whatsapp() -> &'static PriceTable {
    static TABLE: OnceLock<PriceTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        PriceTable::parse(WHATSAPP_PRICES_CSV)
            .unwrap_or_else(|e| panic!("shared/data/whatsapp_prices.csv: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r12_the_sms_price_table_prices_a_part_per_country_with_its_source_and_date() {
        let t = PriceTable::parse(SMS_PRICES_CSV).unwrap();
        assert_eq!(t.as_of, "2026-12-01");
        assert!(
            t.source.contains("AWS End User Messaging SMS"),
            "{}",
            t.source
        );
        assert!(t.verified.starts_with("NO"));
        for must in ["US", "IN", "GB", "BR"] {
            assert!(t.countries().contains(&must), "{must}");
        }
        assert_eq!(t.price(Some("US"), PriceCategory::SmsPart), ("US", 8_830));
        assert_eq!(
            t.price(Some("FJ"), PriceCategory::SmsPart).0,
            DEFAULT_COUNTRY
        );
        assert_eq!(sms().currency, "USD");
        // The WhatsApp table still prices every template category in every country.
        let w = whatsapp();
        for c in w.countries() {
            for cat in [
                PriceCategory::Marketing,
                PriceCategory::Utility,
                PriceCategory::Authentication,
            ] {
                assert!(w.price(Some(c), cat).1 >= 0);
            }
        }
    }

    #[test]
    fn r6_4_the_price_table_data_file_parses_and_is_complete() {
        let t = PriceTable::parse(WHATSAPP_PRICES_CSV).unwrap();
        assert_eq!(t.as_of, "2025-07-01");
        assert!(t.source.contains("Meta"), "{}", t.source);
        assert!(
            t.verified.starts_with("NO"),
            "the note says what was checked"
        );
        assert_eq!(t.currency, "USD");
        let countries = t.countries();
        assert!(
            countries.len() >= 13,
            "a dozen countries and default: {countries:?}"
        );
        for must in ["IN", "BR", "US", "GB", "DE", "MX", "ID"] {
            assert!(countries.contains(&must), "{must}");
        }
        for c in &countries {
            let p = |cat| t.price(Some(c), cat).1;
            assert_eq!(t.price(Some(c), PriceCategory::Marketing).0, *c);
            assert_eq!(p(PriceCategory::Service), 0, "{c}: service is free");
            assert!(p(PriceCategory::Marketing) > 0, "{c}");
            assert!(
                p(PriceCategory::Marketing) >= p(PriceCategory::Utility),
                "{c}: marketing costs at least utility"
            );
            assert!(p(PriceCategory::Authentication) > 0, "{c}");
        }
        assert_eq!(
            t.price(Some("IN"), PriceCategory::Marketing),
            ("IN", 10_700)
        );
        // Countries without a row, and numbers without a country, use the default row.
        assert_eq!(
            t.price(Some("FR"), PriceCategory::Marketing),
            ("default", 60_400)
        );
        assert_eq!(t.price(None, PriceCategory::Utility), ("default", 7_700));
        assert_eq!(whatsapp(), &t);
    }

    #[test]
    fn r6_4_price_table_errors_name_the_line() {
        let head =
            "# source: s\n# as_of: 2025-07-01\n# verified: NO\ncountry,category,currency,price\n";
        let full = |rows: &str| format!("{head}{rows}");
        // The WhatsApp categories.
        let all = |c: &str, cur: &str| {
            PriceCategory::ALL[..4]
                .iter()
                .map(|k| format!("{c},{},{cur},0.01\n", k.as_str()))
                .collect::<String>()
        };
        assert!(PriceTable::parse(&full(&all("default", "USD"))).is_ok());
        let e = PriceTable::parse(&full(&format!(
            "{}IN,MARKETING,USD,0.0.1\n",
            all("default", "USD")
        )))
        .unwrap_err();
        assert!(e.starts_with("line 9:"), "{e}");
        let e = PriceTable::parse(&full(&format!(
            "{}{}",
            all("default", "USD"),
            all("IN", "EUR")
        )))
        .unwrap_err();
        assert!(e.contains("currency EUR"), "{e}");
        let e = PriceTable::parse(&full("IN,MARKETING,USD,0.01\n")).unwrap_err();
        assert!(e.contains("default"), "{e}");
        let e = PriceTable::parse(&full(&format!(
            "{}india,MARKETING,USD,1\n",
            all("default", "USD")
        )))
        .unwrap_err();
        assert!(e.contains("india"), "{e}");
        let e = PriceTable::parse(&all("default", "USD")).unwrap_err();
        assert!(e.contains("source"), "{e}");
        assert_eq!(parse_micros("0.0107"), Ok(10_700));
        assert_eq!(parse_micros("1"), Ok(1_000_000));
        assert_eq!(parse_micros("0.000001"), Ok(1));
        assert!(parse_micros("0.0000001").is_err());
        assert!(parse_micros("-1").is_err());
        assert!(parse_micros("").is_err());
    }
}
