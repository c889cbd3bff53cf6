//! Durations as operators write them (`10m`, `1h30m`, `90s`), in flags and in
//! the config file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A non-negative span of whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub u64);

impl Span {
    /// The longest span read from text: 100 years. Every consumer (the
    /// clock a run's deadline is set on, timestamps a cooldown is added
    /// to, a policy's integers) can hold it; 2^64 seconds overflowed the
    /// deadline's clock.
    pub const MAX: Span = Span(36_525 * 86_400);

    pub const fn seconds(s: u64) -> Self {
        Span(s)
    }
    pub const fn minutes(m: u64) -> Self {
        Span(m * 60)
    }
    pub const fn days(d: u64) -> Self {
        Span(d * 86_400)
    }
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

impl FromStr for Span {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |m: &str| Error::invalid("duration", text, m);
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if t == "0" {
            return Ok(Span(0));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        let mut chars = t.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if digits.is_empty() {
                return Err(bad("expected a number before each unit, e.g. 10m or 1h30m"));
            }
            let n: u64 = digits.parse().map_err(|_| bad("number too large"))?;
            digits.clear();
            let unit = match c {
                'h' => 3600,
                'm' if chars.peek() == Some(&'s') => {
                    return Err(bad("milliseconds are not supported"));
                }
                'm' => 60,
                's' => 1,
                'd' => 86400,
                _ => return Err(bad("units are d, h, m and s")),
            };
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| bad("too large"))?;
        }
        if !digits.is_empty() {
            return Err(bad("a number needs a unit (d, h, m or s)"));
        }
        if total > Span::MAX.0 {
            return Err(bad("longer than 100 years (36525d)"));
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        if self.0 == 0 {
            return write!(f, "0s");
        }
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("10m".parse::<Span>().unwrap(), Span(600));
        assert_eq!("1h30m5s".parse::<Span>().unwrap(), Span(5405));
        assert_eq!("0".parse::<Span>().unwrap(), Span(0));
        assert_eq!(Span(5405).to_string(), "1h30m5s");
        assert_eq!(Span(0).to_string(), "0s");
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in ["", "10", "m", "5x", "100ms", "1.5h"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_spans_longer_than_a_century() {
        assert_eq!("36525d".parse::<Span>().unwrap(), Span::MAX);
        assert_eq!(Span::MAX.to_string().parse::<Span>().unwrap(), Span::MAX);
        for bad in ["36525d1s", "18446744073709551615s", "213503982334601d"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }
}
