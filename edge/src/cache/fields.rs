//! Field-value parsers for the cache policy, pure and total (any bytes in, no panic):
//! [`http_date_ms`] (lenient HTTP-date), [`age_s`] (`Age`), and [`sf_dictionary`] (a
//! Structured Fields dictionary, RFC 8941 §3.2, as `CDN-Cache-Control` is defined by
//! RFC 9213 §2.1).

/// Seconds since the Unix epoch of an HTTP-date (RFC 9110 §5.6.7), as milliseconds.
///
/// Lenient as ATS, nginx and Fastly are: the three formats (IMF-fixdate, RFC 850, asctime),
/// month and zone names in any case, and the weekday is not checked against the date. Dates
/// before 1970 are `Some(0)`; anything unparsable is `None`.
pub fn http_date_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    // Drop the weekday: everything up to the comma (IMF-fixdate, RFC 850), or the first word
    // (asctime).
    let rest = match s.split_once(',') {
        Some((_, r)) => r,
        None => s.split_once(' ').map(|(_, r)| r)?,
    };
    let mut parts = rest.split([' ', '-', '\t']).filter(|p| !p.is_empty());
    let (day, month, year, time);
    let first = parts.next()?;
    if first.as_bytes()[0].is_ascii_digit() {
        // "06 Nov 1994 08:49:37 GMT" or "06-Nov-94 08:49:37 GMT".
        day = first;
        month = parts.next()?;
        year = parts.next()?;
        time = parts.next()?;
        if !parts.next()?.eq_ignore_ascii_case("gmt") {
            return None;
        }
    } else {
        // asctime: "Nov  6 08:49:37 1994".
        month = first;
        day = parts.next()?;
        time = parts.next()?;
        year = parts.next()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let num = |t: &str, max_len: usize| -> Option<u64> {
        if t.is_empty() || t.len() > max_len || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let day = num(day, 2)?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(month))? as u64
        + 1;
    let year = match year.len() {
        // RFC 850 two-digit years: RFC 9110 §5.6.7 asks for the nearest century not more
        // than 50 years ahead; 70..99 → 19xx, 00..69 → 20xx does that until 2020+.
        2 => match num(year, 2)? {
            y @ 70..=99 => 1900 + y,
            y => 2000 + y,
        },
        _ => num(year, 4)?,
    };
    let mut hms = time.split(':');
    let (h, m, sec) = (
        num(hms.next()?, 2)?,
        num(hms.next()?, 2)?,
        num(hms.next()?, 2)?,
    );
    if hms.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day == 0 || day > dim[(month - 1) as usize] {
        return None;
    }
    if year < 1970 {
        return Some(0);
    }
    // Days from civil (H. Hinnant), for years ≥ 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    Some(secs.saturating_mul(1000))
}

/// `Age` (RFC 9111 §5.1): the first member of the field (`7200, 0` is 7200), a run of digits;
/// a value too large for a `u64` saturates. Anything else is `None` (ignored).
pub fn age_s(v: &str) -> Option<u64> {
    let first = v.split(',').next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(first.parse().unwrap_or(u64::MAX))
}

/// A Structured Fields bare item, as far as cache directives care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SfItem {
    /// An Integer (at most 15 digits).
    Integer(i64),
    /// A Boolean (`?1`/`?0`; a key without a value is `true`).
    Boolean(bool),
    /// Any other item (decimal, string, token, byte sequence, inner list).
    Other,
}

/// Parse an RFC 8941 dictionary; `None` when the value is not a valid dictionary (the whole
/// field is then ignored, RFC 9213 §2.1). Members' parameters are checked and dropped.
pub fn sf_dictionary(s: &str) -> Option<Vec<(&str, SfItem)>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    skip(b, &mut i, b" ");
    if i == b.len() {
        return Some(out);
    }
    loop {
        let key = sf_key(s, &mut i)?;
        let item = if b.get(i) == Some(&b'=') {
            i += 1;
            if b.get(i) == Some(&b'(') {
                inner_list(s, &mut i)?;
                SfItem::Other
            } else {
                bare_item(b, &mut i)?
            }
        } else {
            SfItem::Boolean(true)
        };
        params(s, &mut i)?;
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(m) => m.1 = item,
            None => out.push((key, item)),
        }
        skip(b, &mut i, b" \t");
        if i == b.len() {
            return Some(out);
        }
        if b[i] != b',' {
            return None;
        }
        i += 1;
        skip(b, &mut i, b" \t");
        if i == b.len() {
            return None; // trailing comma
        }
    }
}

fn skip(b: &[u8], i: &mut usize, set: &[u8]) {
    while *i < b.len() && set.contains(&b[*i]) {
        *i += 1;
    }
}

fn sf_key<'a>(s: &'a str, i: &mut usize) -> Option<&'a str> {
    let b = s.as_bytes();
    let start = *i;
    match b.get(*i) {
        Some(c) if c.is_ascii_lowercase() || *c == b'*' => *i += 1,
        _ => return None,
    }
    while *i < b.len()
        && (b[*i].is_ascii_lowercase() || b[*i].is_ascii_digit() || b"_-.*".contains(&b[*i]))
    {
        *i += 1;
    }
    s.get(start..*i)
}

fn params(s: &str, i: &mut usize) -> Option<()> {
    let b = s.as_bytes();
    while b.get(*i) == Some(&b';') {
        *i += 1;
        skip(b, i, b" ");
        sf_key(s, i)?;
        if b.get(*i) == Some(&b'=') {
            *i += 1;
            bare_item(b, i)?;
        }
    }
    Some(())
}

fn inner_list(s: &str, i: &mut usize) -> Option<()> {
    let b = s.as_bytes();
    *i += 1; // '('
    loop {
        skip(b, i, b" ");
        match b.get(*i)? {
            b')' => {
                *i += 1;
                return Some(());
            }
            _ => {
                bare_item(b, i)?;
                // Parameters of inner items (keys are ASCII, so `i` stays on char bounds);
                // the field is text already: no per-item UTF-8 pass over all of it.
                params(s, i)?;
                match b.get(*i)? {
                    b' ' | b')' => {}
                    _ => return None,
                }
            }
        }
    }
}

fn bare_item(b: &[u8], i: &mut usize) -> Option<SfItem> {
    match *b.get(*i)? {
        c if c == b'-' || c.is_ascii_digit() => number(b, i),
        b'"' => {
            *i += 1;
            loop {
                match *b.get(*i)? {
                    b'\\' => {
                        *i += 1;
                        if !matches!(b.get(*i)?, b'"' | b'\\') {
                            return None;
                        }
                    }
                    b'"' => {
                        *i += 1;
                        return Some(SfItem::Other);
                    }
                    c if !(0x20..=0x7e).contains(&c) => return None,
                    _ => {}
                }
                *i += 1;
            }
        }
        b'?' => {
            let v = match b.get(*i + 1)? {
                b'0' => false,
                b'1' => true,
                _ => return None,
            };
            *i += 2;
            Some(SfItem::Boolean(v))
        }
        b':' => {
            *i += 1;
            while *b.get(*i)? != b':' {
                if !(b[*i].is_ascii_alphanumeric() || b"+/=".contains(&b[*i])) {
                    return None;
                }
                *i += 1;
            }
            *i += 1;
            Some(SfItem::Other)
        }
        c if c.is_ascii_alphabetic() || c == b'*' => {
            *i += 1;
            while *i < b.len()
                && (b[*i].is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b[*i]))
            {
                *i += 1;
            }
            Some(SfItem::Other)
        }
        _ => None,
    }
}

fn number(b: &[u8], i: &mut usize) -> Option<SfItem> {
    let neg = b[*i] == b'-';
    if neg {
        *i += 1;
    }
    let start = *i;
    let mut dot = None;
    while *i < b.len() && (b[*i].is_ascii_digit() || (b[*i] == b'.' && dot.is_none())) {
        if b[*i] == b'.' {
            dot = Some(*i);
        }
        *i += 1;
    }
    let digits = &b[start..*i];
    if digits.is_empty() || !digits[0].is_ascii_digit() {
        return None;
    }
    match dot {
        None => {
            if digits.len() > 15 {
                return None;
            }
            let v: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            Some(SfItem::Integer(if neg { -v } else { v }))
        }
        Some(d) => {
            let (int, frac) = (d - start, *i - d - 1);
            if int > 12 || frac == 0 || frac > 3 {
                return None;
            }
            Some(SfItem::Other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn http_dates_in_all_three_formats_any_case_any_weekday() {
        let want = Some(784_111_777_000);
        assert_eq!(http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(http_date_ms("sun, 06 nov 1994 08:49:37 gmt"), want);
        assert_eq!(http_date_ms("SUN, 06 NOV 1994 08:49:37 GMT"), want);
        assert_eq!(
            http_date_ms("Mon, 06 Nov 1994 08:49:37 GMT"),
            want,
            "wrong weekday"
        );
        assert_eq!(http_date_ms("Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(http_date_ms("Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date_ms("Fri, 31 Dec 1965 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date_ms("Tue, 29 Feb 2000 23:59:59 GMT"),
            Some(951_868_799_000)
        );
        for bad in [
            "",
            "0",
            "-1",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 99999 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(http_date_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn age_takes_the_first_member_and_saturates() {
        assert_eq!(age_s("7200, 0"), Some(7200));
        assert_eq!(age_s(" 5 "), Some(5));
        assert_eq!(age_s("18446744073709551615"), Some(u64::MAX));
        assert_eq!(age_s("99999999999999999999999999"), Some(u64::MAX));
        for bad in ["", "-1", "1.5", "abc", ", 3"] {
            assert_eq!(age_s(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_long_inner_list_parses_in_one_pass() {
        // 20,000 inner items (an origin's 60 KiB CDN-Cache-Control): parsed and kept linear
        // (each item used to validate the whole field as UTF-8 again).
        let items = "a;b=1 ".repeat(20_000);
        let field = format!("x=({}), max-age=5", items.trim_end());
        let d = sf_dictionary(&field).expect("a valid dictionary");
        assert_eq!(d.len(), 2);
        assert_eq!(d[1], ("max-age", SfItem::Integer(5)));
    }

    #[test]
    fn structured_dictionaries() {
        use SfItem::*;
        assert_eq!(
            sf_dictionary("max-age=10000, no-store").unwrap(),
            [("max-age", Integer(10000)), ("no-store", Boolean(true))]
        );
        assert_eq!(
            sf_dictionary("max-age=\"10000\"").unwrap(),
            [("max-age", Other)]
        );
        assert_eq!(
            sf_dictionary("a=1;p=2, b=?0, c=(1 2);x, d=tok/en, e=:AQ==:, f=1.5").unwrap(),
            [
                ("a", Integer(1)),
                ("b", Boolean(false)),
                ("c", Other),
                ("d", Other),
                ("e", Other),
                ("f", Other)
            ]
        );
        assert_eq!(sf_dictionary("").unwrap(), []);
        for bad in [
            "max-age=10000, &&&&&",
            "Max-Age=10",
            "max-age=",
            "a,",
            "a b",
            "max-age=1234567890123456",
            "a=\"unterminated",
            "a=1.2345",
            "a=?2",
            "a=(1 2",
        ] {
            assert!(sf_dictionary(bad).is_none(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsers_are_total(s in "\\PC{0,60}") {
            let _ = http_date_ms(&s);
            let _ = age_s(&s);
            let _ = sf_dictionary(&s);
        }

        #[test]
        fn imf_dates_round_trip(secs in 0u64..253_402_300_799) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let s = httpdate::fmt_http_date(t);
            prop_assert_eq!(http_date_ms(&s), Some(secs * 1000));
            prop_assert_eq!(http_date_ms(&s.to_ascii_lowercase()), Some(secs * 1000));
        }
    }
}
