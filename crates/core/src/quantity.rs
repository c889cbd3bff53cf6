//! Kubernetes resource quantities (`500m`, `4Gi`, `1e3`), read as numbers so
//! requests can be compared with limits and node capacity.

/// The quantity's value in base units (cores, bytes, counts), or `None` when
/// the text is not a quantity.
pub fn parse(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

/// A value in base units written back as a quantity the way the API server
/// prints its canonical form: a binary suffix for whole multiples of 1024,
/// millis for fractions, plain digits otherwise.
pub fn format(value: f64) -> String {
    if value.fract().abs() > 1e-9 {
        return format!("{}m", (value * 1000.0).round() as i64);
    }
    let mut v = value as i64;
    if v == 0 {
        return "0".into();
    }
    for suffix in ["", "Ki", "Mi", "Gi", "Ti", "Pi"] {
        if v % 1024 != 0 || suffix == "Pi" {
            return format!("{v}{suffix}");
        }
        v /= 1024;
    }
    unreachable!("the last suffix returns")
}

#[cfg(test)]
mod tests {
    use super::{format, parse};

    #[test]
    fn writes_what_it_reads() {
        for q in ["500m", "4Gi", "2", "128Mi", "1536Mi", "0", "1000"] {
            assert_eq!(format(parse(q).unwrap()), q);
        }
    }

    #[test]
    fn reads_suffixes() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("4Gi"), Some(4.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("1k"), Some(1000.0));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("5Xi"), None);
    }
}
