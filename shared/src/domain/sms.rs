//! SMS text as the network carries it (issue 16, R12.1): the encoding a body needs
//! (GSM-7 when every character is in the GSM 03.38 alphabet, else UCS-2) and the parts it
//! is split into. A single part carries 160 GSM-7 septets or 70 UCS-2 code units; a
//! concatenated message loses room to its header: 153 septets or 67 code units a part.
//! A character of the GSM-7 extension table (`€`, `[`, ...) takes two septets, an escape
//! and the character, which never straddle two parts; nor do the two halves of a UCS-2
//! surrogate pair (an emoji). Pacing counts parts, and so do the providers' prices.

use super::template::{fill, fill_known, ContactData, VariableSource, TEMPLATE_VARIABLES_REASON};
use super::DomainError;

/// Parts one campaign message may take unless the campaign says otherwise.
pub const DEFAULT_MAX_SEGMENTS: u32 = 6;

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// How a body is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    /// The GSM 03.38 default alphabet, 7 bits a character.
    Gsm7,
    /// UTF-16, 16 bits a code unit: any character outside GSM-7 makes the whole body UCS-2.
    Ucs2,
}

/// A body's encoding and the parts it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsParts {
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: u32,
    /// Parts (segments) the message is sent as; 0 for an empty body.
    pub segments: u32,
}

/// The septets a character takes in GSM-7, or `None` outside the alphabet.
fn gsm7_septets(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Packs characters of the given sizes into parts of `single` units (one part) or
/// `multi` units each, never splitting a character.
fn pack(sizes: &[u32], single: u32, multi: u32) -> (u32, u32) {
    let units: u32 = sizes.iter().sum();
    if units == 0 {
        return (0, 0);
    }
    if units <= single {
        return (units, 1);
    }
    let (mut parts, mut used) = (1, 0);
    for &s in sizes {
        if used + s > multi {
            parts += 1;
            used = 0;
        }
        used += s;
    }
    (units, parts)
}

/// The encoding `text` needs and the parts it is sent as.
pub fn parts(text: &str) -> SmsParts {
    let gsm: Option<Vec<u32>> = text.chars().map(gsm7_septets).collect();
    let (encoding, sizes) = match gsm {
        Some(sizes) => (SmsEncoding::Gsm7, sizes),
        None => (
            SmsEncoding::Ucs2,
            text.chars().map(|c| c.len_utf16() as u32).collect(),
        ),
    };
    let (units, segments) = match encoding {
        SmsEncoding::Gsm7 => pack(&sizes, 160, 153),
        SmsEncoding::Ucs2 => pack(&sizes, 70, 67),
    };
    SmsParts {
        encoding,
        units,
        segments,
    }
}

/// `text`'s parts when it fits in `max_segments`; else a 422 naming `field`, with what
/// makes it long (the encoding, and the characters that force UCS-2).
pub fn check(text: &str, max_segments: u32, field: &str) -> Result<SmsParts, DomainError> {
    if text.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    let p = parts(text);
    if p.segments <= max_segments {
        return Ok(p);
    }
    let why = match p.encoding {
        SmsEncoding::Gsm7 => "GSM-7, 153 characters a part".to_owned(),
        SmsEncoding::Ucs2 => {
            let forcing: String = text
                .chars()
                .filter(|c| gsm7_septets(*c).is_none())
                .take(5)
                .collect();
            format!("UCS-2 because of {forcing:?}, 67 characters a part")
        }
    };
    Err(DomainError::invalid(
        field,
        format!(
            "takes {} parts ({why}); at most {max_segments} are allowed",
            p.segments
        ),
    ))
}

/// The most parts a campaign may allow a message (the providers concatenate up to 10
/// reliably; Twilio's limit is 1,600 characters, about 10 GSM-7 parts).
pub const MAX_SEGMENTS_LIMIT: u32 = 10;

/// A campaign's `max_segments`, checked: 1 to [`MAX_SEGMENTS_LIMIT`].
pub fn check_max_segments(n: u32) -> Result<u32, DomainError> {
    if (1..=MAX_SEGMENTS_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(DomainError::invalid(
            "max_segments",
            format!("must be between 1 and {MAX_SEGMENTS_LIMIT} parts"),
        ))
    }
}

/// An SMS campaign's message as far as it is known before any contact: its placeholders
/// well formed and mapped, and its parts (free-text variables filled in, the others
/// counted as written) within `max_segments`. A message whose per-contact values make it
/// longer is caught entry by entry at send time ([`render`]).
pub fn check_message(
    message: &str,
    variables: &[VariableSource],
    max_segments: u32,
) -> Result<SmsParts, DomainError> {
    let known = fill_known(message, variables, "message")?;
    check(&known, max_segments, "message")
}

/// A message filled for one contact, as it goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsText {
    pub text: String,
    pub parts: SmsParts,
}

/// The hopper reason of an entry whose contact's values make its SMS longer than the
/// campaign's `max_segments`.
pub const MESSAGE_TOO_LONG_REASON: &str = "message too long";

/// The message for one contact; else the hopper reason and the error recorded on the
/// entry, which is not sent: a variable without a value for it
/// ([`TEMPLATE_VARIABLES_REASON`]), or values that make it longer than `max_segments`
/// ([`MESSAGE_TOO_LONG_REASON`]).
pub fn render(
    message: &str,
    variables: &[VariableSource],
    contact: &ContactData,
    max_segments: u32,
) -> Result<SmsText, (&'static str, String)> {
    let (_, text) =
        fill(message, variables, contact).map_err(|e| (TEMPLATE_VARIABLES_REASON, e))?;
    let parts = check(&text, max_segments, "message").map_err(|e| {
        let why = match e {
            DomainError::Invalid { message, .. } => format!("message for this contact {message}"),
            other => other.to_string(),
        };
        (MESSAGE_TOO_LONG_REASON, why)
    })?;
    Ok(SmsText { text, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str) -> (SmsEncoding, u32, u32) {
        let p = parts(text);
        (p.encoding, p.units, p.segments)
    }

    #[test]
    fn r12_1_gsm7_fits_160_in_one_part_and_153_in_each_of_several() {
        use SmsEncoding::Gsm7;
        assert_eq!(seg(""), (Gsm7, 0, 0));
        assert_eq!(seg("Hi Asha, code SPRING1"), (Gsm7, 21, 1));
        assert_eq!(seg(&"a".repeat(160)), (Gsm7, 160, 1));
        assert_eq!(seg(&"a".repeat(161)), (Gsm7, 161, 2));
        assert_eq!(seg(&"a".repeat(306)), (Gsm7, 306, 2));
        assert_eq!(seg(&"a".repeat(307)), (Gsm7, 307, 3));
        // Accents of the GSM alphabet stay GSM-7.
        assert_eq!(
            seg("Ça coûte 5€? Ñandú").0,
            SmsEncoding::Ucs2,
            "û is not GSM-7"
        );
        assert_eq!(seg("Ça va, 5€ à Göteborg").0, Gsm7);
    }

    #[test]
    fn r12_1_extension_characters_take_two_septets_and_never_straddle_parts() {
        use SmsEncoding::Gsm7;
        assert_eq!(seg(&"€".repeat(80)), (Gsm7, 160, 1));
        assert_eq!(seg(&"€".repeat(81)), (Gsm7, 162, 2));
        // 306 septets would fill two parts exactly, but the escape pair cannot be split
        // at the end of the first part: three parts.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(seg(&text), (Gsm7, 306, 3));
    }

    #[test]
    fn r12_1_anything_outside_gsm7_makes_the_body_ucs2_at_70_and_67() {
        use SmsEncoding::Ucs2;
        assert_eq!(seg("Привет"), (Ucs2, 6, 1));
        assert_eq!(seg(&"я".repeat(70)), (Ucs2, 70, 1));
        assert_eq!(seg(&"я".repeat(71)), (Ucs2, 71, 2));
        assert_eq!(seg(&"я".repeat(134)), (Ucs2, 134, 2));
        assert_eq!(seg(&"я".repeat(135)), (Ucs2, 135, 3));
        // One emoji turns a plain body into UCS-2; it takes two code units.
        assert_eq!(seg(&format!("{}😀", "a".repeat(68))), (Ucs2, 70, 1));
        // A surrogate pair never straddles parts: 66 + 2 does not fit in 67.
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(66));
        assert_eq!(seg(&text), (Ucs2, 134, 3));
    }

    #[test]
    fn r12_1_a_body_over_the_cap_is_a_422_naming_the_field_and_why() {
        let ok = check(&"a".repeat(918), DEFAULT_MAX_SEGMENTS, "message").unwrap();
        assert_eq!(ok.segments, 6);
        let e = check(&"a".repeat(919), DEFAULT_MAX_SEGMENTS, "message").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DomainError::Invalid { ref field, .. } if field == "message"));
        assert!(
            msg.contains("takes 7 parts") && msg.contains("at most 6"),
            "{msg}"
        );
        let e = check(&format!("{} ✓", "a".repeat(500)), 6, "message").unwrap_err();
        assert!(e.to_string().contains("UCS-2 because of \"✓\""), "{e}");
        assert!(check("   ", 6, "message").is_err());
    }

    fn field(name: &str) -> VariableSource {
        VariableSource::Field { name: name.into() }
    }

    #[test]
    fn r12_1_a_campaign_message_is_judged_with_its_free_text_and_its_placeholders_as_written() {
        let vars = vec![
            VariableSource::ContactName,
            VariableSource::Text {
                value: "SPRING".into(),
            },
        ];
        let p = check_message("Hi {{1}}, code {{2}}", &vars, 6).unwrap();
        // "Hi {{1}}, code SPRING": the name's placeholder counted as written, its braces
        // GSM-7 extension characters of two septets each (3 + 9 + 7 + 6).
        assert_eq!((p.units, p.segments), (25, 1));
        let e = check_message("Hi {{1}} and {{3}}", &vars, 6).unwrap_err();
        assert_eq!(e.field(), Some("message"), "{e}");
        let e = check_message("Hi {{1}} {{2}} {{3}}", &vars, 6).unwrap_err();
        assert_eq!(e.field(), Some("variables"), "{e}");
        assert!(e.to_string().contains("{{3}}"), "{e}");
        let long = format!("{{{{1}}}} {}", "x".repeat(400));
        let e = check_message(&long, &vars, 2).unwrap_err();
        assert_eq!(e.field(), Some("message"));
        assert!(e.to_string().contains("3 parts"), "{e}");
        assert!(check_max_segments(0).is_err() && check_max_segments(11).is_err());
        assert_eq!(check_max_segments(10).unwrap(), 10);
    }

    #[test]
    fn r12_1_each_contacts_message_is_rendered_and_refused_alone_when_its_values_make_it_long() {
        let vars = vec![field("city")];
        let mut c = ContactData::default();
        assert_eq!(
            render("See you in {{1}}", &vars, &c, 1).unwrap_err(),
            (
                TEMPLATE_VARIABLES_REASON,
                "missing value for variable {{1}}".to_owned()
            )
        );
        c.fields.insert("city".into(), "Pune".into());
        let t = render("See you in {{1}}", &vars, &c, 1).unwrap();
        assert_eq!(t.text, "See you in Pune");
        assert_eq!((t.parts.encoding, t.parts.segments), (SmsEncoding::Gsm7, 1));
        // A value outside GSM-7 makes this contact's message UCS-2 and longer.
        c.fields.insert("city".into(), "Zürich 🏔".repeat(10));
        let (reason, why) = render("See you in {{1}}", &vars, &c, 1).unwrap_err();
        assert_eq!(reason, MESSAGE_TOO_LONG_REASON);
        assert!(
            why.starts_with("message for this contact takes 2 parts"),
            "{why}"
        );
        assert!(why.contains("UCS-2"), "{why}");
    }
}
