//! Decisecond timestamps to RFC 3339 text, with a hand-written civil-from-days conversion so the
//! core needs no date crate (and no clock: "now" is always an input).

/// Formats deciseconds since the Unix epoch as RFC 3339 UTC with one fractional digit,
/// e.g. `2020-03-11T13:58:57.4Z`.
#[must_use]
pub fn format_deciseconds(ds: u64) -> String {
    let secs = ds / 10;
    let tenth = ds % 10;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{tenth}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days` for non-negative day counts since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_deciseconds(0), "1970-01-01T00:00:00.0Z");
        // 2020-03-11T13:58:57.4Z = 1583935137.4 s
        assert_eq!(format_deciseconds(15_839_351_374), "2020-03-11T13:58:57.4Z");
        // Leap day.
        assert_eq!(format_deciseconds(9_517_824_000), "2000-02-29T00:00:00.0Z");
        assert_eq!(format_deciseconds(41_024_447_999), "2099-12-31T23:59:59.9Z");
    }
}
