//! Evaluating a [`Condition`] (an OR of AND groups of operations, docs/build-format.md §4.6).
//! Comparisons never fail: a value of the wrong kind makes the operation false (and its
//! negated twin, which tests the same kind, false too), so a missing field cannot throw.

use para_build::{Condition, Operation};
use serde_json::Value;

use crate::values::{Scope, resolve};

/// Whether the condition holds. An operator this engine does not know is an error (a newer
/// build than the server), naming it.
pub fn holds(condition: &Condition, scope: &Scope<'_>) -> Result<bool, String> {
    for group in &condition.or {
        let mut all = true;
        for operation in group {
            if !operation_holds(operation, scope)? {
                all = false;
                break;
            }
        }
        if all {
            return Ok(true);
        }
    }
    Ok(false)
}

fn operation_holds(op: &Operation, scope: &Scope<'_>) -> Result<bool, String> {
    let a = op.operands.first().and_then(|s| resolve(s, scope));
    let b = op.operands.get(1).and_then(|s| resolve(s, scope));
    let string_pair = || Some((as_string(a.as_ref()?)?, as_string(b.as_ref()?)?));
    let number_pair = || Some((as_number(a.as_ref()?)?, as_number(b.as_ref()?)?));
    let time_pair = || Some((as_time(a.as_ref()?)?, as_time(b.as_ref()?)?));
    let present = a.as_ref().is_some_and(|v| !v.is_null());
    Ok(match op.operator.as_str() {
        "$stringContains" => string_pair().is_some_and(|(x, y)| x.contains(&y)),
        "$stringDoesNotContain" => string_pair().is_some_and(|(x, y)| !x.contains(&y)),
        "$stringExactlyMatches" => string_pair().is_some_and(|(x, y)| x == y),
        "$stringDoesNotExactlyMatch" => string_pair().is_some_and(|(x, y)| x != y),
        "$stringStartsWith" => string_pair().is_some_and(|(x, y)| x.starts_with(&y)),
        "$stringDoesNotStartWith" => string_pair().is_some_and(|(x, y)| !x.starts_with(&y)),
        "$stringEndsWith" => string_pair().is_some_and(|(x, y)| x.ends_with(&y)),
        "$stringDoesNotEndWith" => string_pair().is_some_and(|(x, y)| !x.ends_with(&y)),
        "$stringGreaterThan" => string_pair().is_some_and(|(x, y)| x > y),
        "$stringLessThan" => string_pair().is_some_and(|(x, y)| x < y),
        "$stringIsIn" => is_in(a.as_ref(), b.as_ref()).unwrap_or(false),
        "$stringIsNotIn" => is_in(a.as_ref(), b.as_ref()).is_some_and(|found| !found),
        "$numberGreaterThan" => number_pair().is_some_and(|(x, y)| x > y),
        "$numberLessThan" => number_pair().is_some_and(|(x, y)| x < y),
        "$numberEquals" => number_pair().is_some_and(|(x, y)| x == y),
        "$numberDoesNotEqual" => number_pair().is_some_and(|(x, y)| x != y),
        "$numberGreaterThanOrEqualTo" => number_pair().is_some_and(|(x, y)| x >= y),
        "$numberLessThanOrEqualTo" => number_pair().is_some_and(|(x, y)| x <= y),
        "$dateTimeAfter" => time_pair().is_some_and(|(x, y)| x > y),
        "$dateTimeBefore" => time_pair().is_some_and(|(x, y)| x < y),
        "$dateTimeEquals" => time_pair().is_some_and(|(x, y)| x == y),
        "$booleanTrue" => as_bool(a.as_ref()) == Some(true),
        "$booleanFalse" => as_bool(a.as_ref()) == Some(false),
        "$isNull" | "$doesNotExist" => !present,
        "$isNotNull" | "$exists" => present,
        "$arrayIsIn" => array_has(a.as_ref(), b.as_ref()).unwrap_or(false),
        "$arrayIsNotIn" => array_has(a.as_ref(), b.as_ref()).is_some_and(|found| !found),
        "$arrayIsEmpty" => matches!(&a, Some(Value::Array(items)) if items.is_empty()) || !present,
        "$arrayIsNotEmpty" => matches!(&a, Some(Value::Array(items)) if !items.is_empty()),
        "$none" => true,
        other => {
            return Err(format!("unknown condition operator `{other}`: rebuild with this para"));
        }
    })
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn as_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `value` among `list` (an array, or a comma-separated string).
fn is_in(value: Option<&Value>, list: Option<&Value>) -> Option<bool> {
    let needle = as_string(value?)?;
    Some(match list? {
        Value::Array(items) => items.iter().filter_map(as_string).any(|s| s == needle),
        Value::String(s) => s.split(',').map(str::trim).any(|s| s == needle),
        _ => return None,
    })
}

/// The array `a` contains `b`; or, when `a` is a single value and `b` an array, `b` contains it.
fn array_has(a: Option<&Value>, b: Option<&Value>) -> Option<bool> {
    let same =
        |x: &Value, y: &Value| x == y || (as_string(x).is_some() && as_string(x) == as_string(y));
    match (a?, b?) {
        (Value::Array(items), needle) => Some(items.iter().any(|i| same(i, needle))),
        (needle, Value::Array(items)) => Some(items.iter().any(|i| same(i, needle))),
        _ => None,
    }
}

/// A date-time as Unix milliseconds: a number (ms), or an ISO 8601 / RFC 3339 text
/// (`2026-12-02`, `2026-12-02T10:30:00Z`, `…T10:30:00.250+01:00`).
pub fn as_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => parse_iso(s.trim()),
        _ => None,
    }
}

fn parse_iso(s: &str) -> Option<i64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten()
    };
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(y, m, day) * 86_400_000;
    if let Some(time) = rest {
        let (clock, offset_ms) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
            (t, 0)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let (t, off) = time.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let mut parts = off[1..].split(':');
            let h = num(parts.next()?)?;
            let mi = parts.next().map_or(Some(0), num)?;
            (t, sign * (h * 60 + mi) * 60_000)
        } else {
            (time, 0)
        };
        let (hms, frac) = clock.split_once('.').map_or((clock, None), |(a, b)| (a, Some(b)));
        let mut p = hms.split(':');
        let h = num(p.next()?)?;
        let mi = num(p.next()?)?;
        let sec = p.next().map_or(Some(0), num)?;
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let millis = match frac {
            Some(f) => num(&format!("{f:0<3}")[..3])?,
            None => 0,
        };
        ms += ((h * 60 + mi) * 60 + sec) * 1000 + millis - offset_ms;
    }
    Some(ms)
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

#[cfg(test)]
mod tests {
    use super::*;
    use para_build::Source;
    use serde_json::json;

    fn op(operator: &str, operands: Vec<Value>) -> Operation {
        Operation {
            operator: operator.into(),
            operands: operands.into_iter().map(|value| Source::Value { value }).collect(),
        }
    }

    fn check(operator: &str, operands: Vec<Value>) -> bool {
        let condition = Condition { or: vec![vec![op(operator, operands)]] };
        holds(&condition, &Scope::default()).unwrap()
    }

    #[test]
    fn operators_compare_what_they_name() {
        assert!(check("$stringContains", vec![json!("hello world"), json!("lo w")]));
        assert!(!check("$stringContains", vec![json!(null), json!("x")]));
        assert!(
            !check("$stringDoesNotContain", vec![json!(null), json!("x")]),
            "a missing value is no string"
        );
        assert!(check("$stringIsIn", vec![json!("b"), json!(["a", "b"])]));
        assert!(check("$stringIsIn", vec![json!("b"), json!("a, b")]));
        assert!(check("$stringIsNotIn", vec![json!("c"), json!(["a", "b"])]));
        assert!(check("$numberGreaterThan", vec![json!("10"), json!(9)]));
        assert!(!check("$numberGreaterThan", vec![json!("ten"), json!(9)]));
        assert!(check("$numberLessThanOrEqualTo", vec![json!(2.5), json!(2.5)]));
        assert!(check(
            "$dateTimeAfter",
            vec![json!("2026-12-02T10:00:00+01:00"), json!("2026-12-02T08:59:59Z")]
        ));
        assert!(check(
            "$dateTimeEquals",
            vec![json!("2026-12-02T09:00:00.000Z"), json!(1_796_202_000_000_i64)]
        ));
        assert!(check("$dateTimeBefore", vec![json!("2026-12-01"), json!("2026-12-01T00:00:01Z")]));
        assert!(check("$booleanTrue", vec![json!("TRUE")]));
        assert!(!check("$booleanFalse", vec![json!(null)]));
        assert!(check("$isNull", vec![json!(null)]));
        assert!(check("$exists", vec![json!(0)]));
        assert!(check("$arrayIsIn", vec![json!([1, 2]), json!("2")]));
        assert!(check("$arrayIsNotIn", vec![json!([1, 2]), json!(3)]));
        assert!(check("$arrayIsEmpty", vec![json!([])]));
        assert!(check("$arrayIsNotEmpty", vec![json!([0])]));
        assert!(check("$none", vec![]));
        let unknown = Condition { or: vec![vec![op("$soon", vec![])]] };
        assert!(holds(&unknown, &Scope::default()).unwrap_err().contains("$soon"));
    }

    #[test]
    fn or_of_and_groups_over_persona_metadata() {
        // And(plan == pro, Or(seats > 2, beta)) as the compiler normalises it.
        let meta = json!({ "plan": "pro", "seats": 1, "beta": true });
        let scope = Scope { meta: Some(&meta), ..Scope::default() };
        let m = |k: &str| Source::PersonaMetadata { path: vec![k.to_string()] };
        let v = |x: Value| Source::Value { value: x };
        let plan = Operation {
            operator: "$stringExactlyMatches".into(),
            operands: vec![m("plan"), v(json!("pro"))],
        };
        let seats = Operation {
            operator: "$numberGreaterThan".into(),
            operands: vec![m("seats"), v(json!(2))],
        };
        let beta = Operation { operator: "$booleanTrue".into(), operands: vec![m("beta")] };
        let condition = Condition { or: vec![vec![plan.clone(), seats], vec![plan, beta]] };
        assert!(holds(&condition, &scope).unwrap());
        let meta = json!({ "plan": "pro", "seats": 1 });
        assert!(!holds(&condition, &Scope { meta: Some(&meta), ..Scope::default() }).unwrap());
    }
}
