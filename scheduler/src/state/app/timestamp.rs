//! Marathon's timestamps: ISO-8601 in UTC with milliseconds and `Z`
//! (`2015-09-25T15:13:48.343Z`), used for app versions and `versionInfo`.
//!
//! Hand-written (civil-date arithmetic from Howard Hinnant's
//! `days_from_civil`) to keep the build free of a date crate.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an ISO-8601 date-time such as 2015-09-25T15:13:48.343Z")]
pub struct TimestampError(pub String);

/// A point in time with millisecond precision. Ordered; displays and parses
/// as ISO-8601 UTC (`2015-09-25T15:13:48.343Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// The milliseconds with the sign bit flipped: ordered as the signed
    /// value is, and never zero (`i64::MIN` is clamped away), so that an
    /// `Option<Timestamp>` takes 8 bytes, not 16. Tasks keep five of them.
    biased: NonZeroU64,
}

const MS_PER_DAY: i64 = 86_400_000;
const SIGN_BIT: u64 = 1 << 63;

impl Timestamp {
    /// The current wall-clock time, truncated to milliseconds. Only the
    /// scheduler's [`crate::clock::Clock`] calls it (clippy refuses it
    /// elsewhere in the scheduler).
    pub fn now() -> Timestamp {
        #[allow(clippy::disallowed_methods)] // the wall clock itself
        let now = SystemTime::now();
        let millis = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Timestamp::from_millis(millis)
    }

    /// The timestamp this many milliseconds after the Unix epoch
    /// (`i64::MIN` is taken as one millisecond later).
    pub fn from_millis(millis: i64) -> Timestamp {
        let biased = (millis.max(i64::MIN + 1) as u64) ^ SIGN_BIT;
        Timestamp {
            biased: NonZeroU64::new(biased).unwrap_or(NonZeroU64::MIN),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        (self.biased.get() ^ SIGN_BIT) as i64
    }

    /// The timestamp `ms` milliseconds later (saturating).
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp::from_millis(self.as_millis().saturating_add(ms))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.as_millis().div_euclid(MS_PER_DAY);
        let ms_of_day = self.as_millis().rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            ms_of_day % 1000
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// A cursor over ASCII input for the parser.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let slice = self.bytes.get(self.at..self.at + n)?;
        if !slice.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at += n;
        Some(
            slice
                .iter()
                .fold(0, |acc, b| acc * 10 + i64::from(b - b'0')),
        )
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.bytes.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }
}

/// Accepts `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z` or an offset
/// (`+02:00`, `+0200`, `-05`). Fractions beyond milliseconds are truncated.
impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).ok_or_else(|| TimestampError(s.chars().take(64).collect()))
    }
}

fn parse(s: &str) -> Option<Timestamp> {
    let mut c = Cursor {
        bytes: s.as_bytes(),
        at: 0,
    };
    let y = c.digits(4)?;
    c.eat(b'-').then_some(())?;
    let mo = c.digits(2)?;
    c.eat(b'-').then_some(())?;
    let d = c.digits(2)?;
    (c.eat(b'T') || c.eat(b't')).then_some(())?;
    let h = c.digits(2)?;
    c.eat(b':').then_some(())?;
    let mi = c.digits(2)?;
    let mut sec = 0;
    let mut ms = 0;
    if c.eat(b':') {
        sec = c.digits(2)?;
        if c.eat(b'.') || c.eat(b',') {
            let mut n = 0;
            while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
                if n < 3 {
                    ms = ms * 10 + i64::from(b - b'0');
                }
                n += 1;
                c.at += 1;
            }
            if n == 0 {
                return None;
            }
            for _ in n..3 {
                ms *= 10;
            }
        }
    }
    let offset_minutes = match c.peek()? {
        b'Z' | b'z' => {
            c.at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            c.at += 1;
            let oh = c.digits(2)?;
            let om = if c.eat(b':') {
                c.digits(2)?
            } else {
                c.digits(2).unwrap_or(0)
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let total = oh * 60 + om;
            if sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    if c.at != s.len()
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_minutes * 60;
    Some(Timestamp::from_millis(secs * 1000 + ms))
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_443_194_028_343).to_string(),
            "2015-09-25T15:13:48.343Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn parses_marathon_and_offset_forms() {
        let t: Timestamp = "2015-09-25T15:13:48.343Z".parse().expect("parses");
        assert_eq!(t.as_millis(), 1_443_194_028_343);
        let offset: Timestamp = "2015-09-25T17:13:48.343+02:00".parse().expect("parses");
        assert_eq!(offset, t);
        let coarse: Timestamp = "2015-09-25T15:13:48Z".parse().expect("parses");
        assert_eq!(coarse.as_millis(), 1_443_194_028_000);
        let fine: Timestamp = "2015-09-25T15:13:48.343999Z".parse().expect("parses");
        assert_eq!(fine, t);
        let tenths: Timestamp = "2015-09-25T15:13:48.3Z".parse().expect("parses");
        assert_eq!(tenths.as_millis(), 1_443_194_028_300);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2015-09-25",
            "2015-13-01T00:00:00Z",
            "2015-02-29T00:00:00Z",
            "2015-09-25T24:00:00Z",
            "2015-09-25T15:13:48.Z",
            "2015-09-25T15:13:48.343",
            "2015-09-25T15:13:48.343Zjunk",
            "２015-09-25T15:13:48Z",
        ] {
            assert!(
                bad.parse::<Timestamp>().is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn orders_by_time_and_round_trips() {
        let a = Timestamp::from_millis(1_000);
        let b = a.plus_millis(1);
        assert!(a < b);
        for ms in [
            0,
            1,
            999,
            1_443_194_028_343,
            4_102_444_799_999,
            253_402_300_799_999,
        ] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
        let json = serde_json::to_string(&a).expect("serializes");
        assert_eq!(json, "\"1970-01-01T00:00:01.000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).expect("parses"), a);
    }

    #[test]
    fn compact_encoding_keeps_order_and_option_size() {
        let ms = [
            i64::MIN,
            i64::MIN + 1,
            -86_400_001,
            -1,
            0,
            1,
            1_443_194_028_343,
            i64::MAX,
        ];
        let ts: Vec<Timestamp> = ms.iter().map(|&m| Timestamp::from_millis(m)).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
        for (&m, t) in ms.iter().zip(&ts).skip(1) {
            assert_eq!(t.as_millis(), m);
        }
        assert_eq!(ts[0].as_millis(), i64::MIN + 1, "the one value clamped");
        assert_eq!(
            Timestamp::from_millis(-5).plus_millis(i64::MIN).as_millis(),
            i64::MIN + 1
        );
        assert_eq!(std::mem::size_of::<Option<Timestamp>>(), 8);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the wall clock itself
    fn now_is_recent() {
        // 2020-01-01 as a floor: the clock is not at the epoch.
        assert!(Timestamp::now().as_millis() > 1_577_836_800_000);
    }
}
