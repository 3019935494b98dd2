//! The `Condition` element: every IAM condition operator, with `…IfExists`
//! and the `ForAllValues:`/`ForAnyValue:` set qualifiers.
//!
//! Semantics, from IAM's documentation:
//! - several operators in a block, and several keys under one operator, are
//!   ANDed; several values for one key are ORed;
//! - a negated operator (`StringNotEquals`, `ArnNotLike`, `NotIpAddress`, …)
//!   holds when the context value matches none of the policy's values;
//! - an absent key makes a condition false, except for negated operators
//!   (true), `…IfExists` (true) and `Null`;
//! - `ForAllValues` holds when every context value matches (so also for an
//!   absent or empty key); `ForAnyValue` when at least one does (so not for
//!   an absent or empty key).

use std::net::IpAddr;

use crate::arn::split_six;
use crate::context::{Context, normalize_key};
use crate::glob::Glob;
use crate::variables::Template;

/// The base operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl Operator {
    const ALL: [(Operator, &'static str); 27] = [
        (Self::StringEquals, "StringEquals"),
        (Self::StringNotEquals, "StringNotEquals"),
        (Self::StringEqualsIgnoreCase, "StringEqualsIgnoreCase"),
        (Self::StringNotEqualsIgnoreCase, "StringNotEqualsIgnoreCase"),
        (Self::StringLike, "StringLike"),
        (Self::StringNotLike, "StringNotLike"),
        (Self::NumericEquals, "NumericEquals"),
        (Self::NumericNotEquals, "NumericNotEquals"),
        (Self::NumericLessThan, "NumericLessThan"),
        (Self::NumericLessThanEquals, "NumericLessThanEquals"),
        (Self::NumericGreaterThan, "NumericGreaterThan"),
        (Self::NumericGreaterThanEquals, "NumericGreaterThanEquals"),
        (Self::DateEquals, "DateEquals"),
        (Self::DateNotEquals, "DateNotEquals"),
        (Self::DateLessThan, "DateLessThan"),
        (Self::DateLessThanEquals, "DateLessThanEquals"),
        (Self::DateGreaterThan, "DateGreaterThan"),
        (Self::DateGreaterThanEquals, "DateGreaterThanEquals"),
        (Self::Bool, "Bool"),
        (Self::BinaryEquals, "BinaryEquals"),
        (Self::IpAddress, "IpAddress"),
        (Self::NotIpAddress, "NotIpAddress"),
        (Self::ArnEquals, "ArnEquals"),
        (Self::ArnLike, "ArnLike"),
        (Self::ArnNotEquals, "ArnNotEquals"),
        (Self::ArnNotLike, "ArnNotLike"),
        (Self::Null, "Null"),
    ];

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(op, _)| *op)
    }

    /// Holds when the context value matches none of the values.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals
                | Self::StringNotEqualsIgnoreCase
                | Self::StringNotLike
                | Self::NumericNotEquals
                | Self::DateNotEquals
                | Self::NotIpAddress
                | Self::ArnNotEquals
                | Self::ArnNotLike
        )
    }

    /// Whether policy variables are substituted in this operator's values.
    fn takes_variables(self) -> bool {
        matches!(
            self,
            Self::StringEquals
                | Self::StringNotEquals
                | Self::StringEqualsIgnoreCase
                | Self::StringNotEqualsIgnoreCase
                | Self::StringLike
                | Self::StringNotLike
                | Self::ArnEquals
                | Self::ArnLike
                | Self::ArnNotEquals
                | Self::ArnNotLike
        )
    }
}

/// `ForAllValues:` / `ForAnyValue:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

/// The values of a condition, compiled for their operator.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    /// String and ARN operators: compiled once when plain, else templates
    /// whose variables are substituted per request.
    Text(Vec<TextValue>),
    Numbers(Vec<f64>),
    /// Milliseconds since the epoch.
    Dates(Vec<i64>),
    Bools(Vec<bool>),
    Networks(Vec<Network>),
    Binary(Vec<String>),
}

/// One key under one operator, e.g. `"StringEquals": {"pw:username": ["a", "b"]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The operator as written (`ForAnyValue:StringLikeIfExists`).
    pub operator_name: String,
    /// The key as written.
    pub key_name: String,
    /// The values as written (numbers and booleans as their text).
    pub raw_values: Vec<String>,
    operator: Operator,
    set: Option<SetQualifier>,
    if_exists: bool,
    key: String,
    values: Values,
}

impl Condition {
    /// Compiles one operator/key/values triple; the error says what is wrong
    /// with it, to be prefixed with where it stands.
    pub fn new(operator_name: &str, key_name: &str, raw_values: Vec<String>, variables: bool) -> Result<Self, String> {
        let (set, rest) = if let Some(rest) = operator_name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else if let Some(rest) = operator_name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else {
            (None, operator_name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let operator =
            Operator::from_name(base).ok_or_else(|| format!("unknown condition operator {operator_name:?}"))?;
        if operator == Operator::Null && (if_exists || set.is_some()) {
            return Err(format!("{operator_name:?}: Null takes neither IfExists nor a set qualifier"));
        }
        if key_name.trim().is_empty() {
            return Err(format!("{operator_name}: a condition key must not be empty"));
        }
        if raw_values.is_empty() {
            return Err(format!("{operator_name}: {key_name:?} needs at least one value"));
        }
        let bad = |kind: &str, value: &str| format!("{operator_name}: {key_name:?}: {value:?} is not {kind}");
        let values = match operator {
            Operator::NumericEquals
            | Operator::NumericNotEquals
            | Operator::NumericLessThan
            | Operator::NumericLessThanEquals
            | Operator::NumericGreaterThan
            | Operator::NumericGreaterThanEquals => Values::Numbers(
                raw_values
                    .iter()
                    .map(|v| parse_number(v).ok_or_else(|| bad("a number", v)))
                    .collect::<Result<_, _>>()?,
            ),
            Operator::DateEquals
            | Operator::DateNotEquals
            | Operator::DateLessThan
            | Operator::DateLessThanEquals
            | Operator::DateGreaterThan
            | Operator::DateGreaterThanEquals => Values::Dates(
                raw_values
                    .iter()
                    .map(|v| parse_date(v).ok_or_else(|| bad("a date (ISO 8601 or epoch seconds)", v)))
                    .collect::<Result<_, _>>()?,
            ),
            Operator::Bool | Operator::Null => Values::Bools(
                raw_values
                    .iter()
                    .map(|v| parse_bool(v).ok_or_else(|| bad("true or false", v)))
                    .collect::<Result<_, _>>()?,
            ),
            Operator::IpAddress | Operator::NotIpAddress => Values::Networks(
                raw_values
                    .iter()
                    .map(|v| Network::parse(v).ok_or_else(|| bad("an IP address or CIDR block", v)))
                    .collect::<Result<_, _>>()?,
            ),
            Operator::BinaryEquals => Values::Binary(raw_values.clone()),
            _ => Values::Text(
                raw_values
                    .iter()
                    .map(|v| TextValue::new(v, operator, variables && operator.takes_variables()))
                    .collect(),
            ),
        };
        Ok(Self {
            operator_name: operator_name.to_owned(),
            key_name: key_name.to_owned(),
            raw_values,
            operator,
            set,
            if_exists,
            key: normalize_key(key_name),
            values,
        })
    }

    /// Whether the condition holds for the request.
    pub fn holds(&self, context: &Context) -> bool {
        let present = context.get_normalized(&self.key);
        if self.operator == Operator::Null {
            let Values::Bools(expected) = &self.values else {
                return false;
            };
            let absent = present.is_none_or(|v| v.values().is_empty());
            return expected.contains(&absent);
        }
        let Some(value) = present else {
            return self.if_exists
                || match self.set {
                    Some(SetQualifier::ForAllValues) => true,
                    Some(SetQualifier::ForAnyValue) => false,
                    None => self.operator.is_negated(),
                };
        };
        let values = value.values();
        let negated = self.operator.is_negated();
        // Whether one context value satisfies the operator.
        let satisfies = |v: &str| self.matches_any(v, context) != negated;
        match self.set {
            Some(SetQualifier::ForAllValues) => values.iter().all(|v| satisfies(v)),
            Some(SetQualifier::ForAnyValue) => values.iter().any(|v| satisfies(v)),
            // A single-valued operator on several values: any of them may
            // match; a negated one holds when none matches.
            None if negated => !values.iter().any(|v| self.matches_any(v, context)),
            None => values.iter().any(|v| self.matches_any(v, context)),
        }
    }

    /// Whether `value` matches at least one policy value under the positive
    /// form of the operator (`StringEquals` for `StringNotEquals`, …).
    fn matches_any(&self, value: &str, context: &Context) -> bool {
        use Operator as O;
        match (&self.values, self.operator) {
            (Values::Text(texts), O::StringEquals | O::StringNotEquals) => texts.iter().any(|t| match t {
                TextValue::Plain { text, .. } => text == value,
                TextValue::Template(t) => t.render(context).is_some_and(|p| p == value),
            }),
            (Values::Text(texts), O::StringEqualsIgnoreCase | O::StringNotEqualsIgnoreCase) => {
                texts.iter().any(|t| match t {
                    TextValue::Plain { text, .. } => text.eq_ignore_ascii_case(value),
                    TextValue::Template(t) => t.render(context).is_some_and(|p| p.eq_ignore_ascii_case(value)),
                })
            }
            (Values::Text(texts), O::StringLike | O::StringNotLike) => texts.iter().any(|t| match t {
                TextValue::Plain { glob: Some(glob), .. } => glob.matches(value),
                TextValue::Plain { text, .. } => text == value,
                TextValue::Template(t) => t.glob(context, false).is_some_and(|g| g.matches(value)),
            }),
            (Values::Text(texts), _) => {
                // ARN operators: each of the six parts matched on its own.
                let Some(parts) = split_six(value) else { return false };
                texts.iter().any(|t| match t {
                    TextValue::Plain { arn: Some(patterns), .. } => arn_parts_match(patterns, &parts),
                    TextValue::Plain { .. } => false,
                    TextValue::Template(t) => t.render(context).is_some_and(|pattern| {
                        split_six(&pattern).is_some_and(|patterns| {
                            let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(p, false)).collect();
                            arn_parts_match(&globs, &parts)
                        })
                    }),
                })
            }
            (Values::Numbers(numbers), op) => {
                let Some(v) = parse_number(value) else {
                    return false;
                };
                numbers.iter().any(|n| compare(op, v.partial_cmp(n)))
            }
            (Values::Dates(dates), op) => {
                let Some(v) = parse_date(value) else {
                    return false;
                };
                dates.iter().any(|d| compare(op, Some(v.cmp(d))))
            }
            (Values::Bools(bools), _) => parse_bool(value).is_some_and(|v| bools.contains(&v)),
            (Values::Networks(networks), _) => {
                value.trim().parse::<IpAddr>().is_ok_and(|ip| networks.iter().any(|n| n.contains(ip)))
            }
            (Values::Binary(encoded), _) => encoded.iter().any(|e| e == value),
        }
    }
}

/// A value of a string or ARN operator.
#[derive(Debug, Clone, PartialEq)]
enum TextValue {
    Plain {
        text: String,
        /// For `StringLike`/`StringNotLike`.
        glob: Option<Glob>,
        /// For the ARN operators: the six parts, or `None` when the value is
        /// not ARN-shaped (it then matches nothing).
        arn: Option<Vec<Glob>>,
    },
    Template(Template),
}

impl TextValue {
    fn new(source: &str, operator: Operator, variables: bool) -> Self {
        let template = Template::parse(source, variables);
        if !template.is_plain() {
            return Self::Template(template);
        }
        use Operator as O;
        let glob = matches!(operator, O::StringLike | O::StringNotLike).then(|| Glob::new(source, false));
        let arn = matches!(operator, O::ArnEquals | O::ArnLike | O::ArnNotEquals | O::ArnNotLike)
            .then(|| split_six(source).map(|parts| parts.iter().map(|p| Glob::new(p, false)).collect()))
            .flatten();
        Self::Plain { text: source.to_owned(), glob, arn }
    }
}

fn arn_parts_match(patterns: &[Glob], parts: &[&str; 6]) -> bool {
    patterns.len() == 6 && patterns.iter().zip(parts.iter()).all(|(p, v)| p.matches(v))
}

fn compare(op: Operator, ordering: Option<std::cmp::Ordering>) -> bool {
    use Operator as O;
    use std::cmp::Ordering::{Equal, Greater, Less};
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        O::NumericEquals | O::NumericNotEquals | O::DateEquals | O::DateNotEquals => ordering == Equal,
        O::NumericLessThan | O::DateLessThan => ordering == Less,
        O::NumericLessThanEquals | O::DateLessThanEquals => ordering != Greater,
        O::NumericGreaterThan | O::DateGreaterThan => ordering == Greater,
        O::NumericGreaterThanEquals | O::DateGreaterThanEquals => ordering != Less,
        _ => false,
    }
}

fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    let ok =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    ok.then(|| text.parse::<f64>().ok()).flatten().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") => Some(true),
        t if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Milliseconds since the epoch of an ISO 8601 date or date-time (`2026-01-01`,
/// `2026-01-01T10:00:00Z`, `…T10:00:00.5+02:00`), or of a number of seconds.
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok()?.checked_mul(1000);
    }
    let (date, time) = match text.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day).checked_mul(86_400_000)?;
    if let Some(time) = time {
        let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            (clock, 0)
        } else if let Some(at) = time.rfind(['+', '-']) {
            let (clock, offset) = time.split_at(at);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            (clock, sign * (hours * 60 + minutes))
        } else {
            (time, 0)
        };
        let mut fields = clock.split(':');
        let hour: i64 = fields.next()?.parse().ok()?;
        let minute: i64 = fields.next()?.parse().ok()?;
        let (second, fraction) = match fields.next() {
            Some(s) => match s.split_once('.') {
                Some((whole, frac)) => {
                    let frac: String = frac.chars().take(3).collect();
                    let scale = 10i64.pow(3 - frac.len() as u32);
                    (whole.parse::<i64>().ok()?, frac.parse::<i64>().ok()? * scale)
                }
                None => (s.parse::<i64>().ok()?, 0),
            },
            None => (0, 0),
        };
        if fields.next().is_some() || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        millis += ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + fraction;
    }
    Some(millis)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An IPv4 or IPv6 network (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { address, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_iam_writes_them() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_date("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(parse_date("2026-01-01T02:00:00+02:00"), Some(1_767_225_600_000));
        assert_eq!(parse_date("2026-01-01T00:00:00.250Z"), Some(1_767_225_600_250));
        assert_eq!(parse_date("1767225600"), Some(1_767_225_600_000));
        assert_eq!(parse_date("2024-02-29"), parse_date("2024-03-01").map(|d| d - 86_400_000));
        for bad in ["", "2026-13-01", "2025-02-29", "yesterday", "2026-01-01T25:00:00Z", "2026-01"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net = Network::parse("203.0.113.0/24").expect("valid");
        assert!(net.contains("203.0.113.7".parse().expect("ip")));
        assert!(!net.contains("203.0.114.7".parse().expect("ip")));
        assert!(net.contains("::ffff:203.0.113.9".parse().expect("ip")));
        let v6 = Network::parse("2001:db8::/32").expect("valid");
        assert!(v6.contains("2001:db8:1::5".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::5".parse().expect("ip")));
        assert!(Network::parse("0.0.0.0/0").expect("valid").contains("8.8.8.8".parse().expect("ip")));
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(Network::parse("10.0.0").is_none());
    }
}
