//! Evaluating a value-path filter against one item of a multi-valued
//! attribute, e.g. the stored email rendered as
//! `{"value":"a@b","type":"work","primary":true}`.

use std::cmp::Ordering;

use serde_json::Value as Json;

use super::MAX_FILTER_DEPTH;
use super::ast::{AttrPath, CompareOp, Expr, Value};

/// Whether `item` matches `expr`, comparing strings case-insensitively.
/// Same as [`matches_item_with`]`(expr, item, false)`.
pub fn matches_item(expr: &Expr, item: &Json) -> bool {
    matches_item_with(expr, item, false)
}

/// Whether `item` (one value of a multi-valued attribute) matches `expr`,
/// the filter inside a value path's brackets.
///
/// - Attribute paths name the item's sub-attributes, case-insensitively;
///   `a.b` looks into a nested object. When the item is not an object (a
///   plain string role, say), the path `value` names the item itself. Paths
///   with a URN name nothing.
/// - JSON `null`, `""`, `[]` and `{}` count as absent. `pr` is true for a
///   present value. Comparisons of an absent value are false, except `ne`,
///   which is always the negation of `eq` (so true when absent), and
///   `eq null` (true when absent).
/// - Strings compare case-insensitively unless `case_exact`; two strings that
///   are both RFC 3339 date-times compare as instants for `eq ne gt ge lt le`.
///   Booleans compare with booleans and with the strings `"true"`/`"false"`
///   in any case (Okta sends `"primary": "True"`), only by `eq`/`ne`. Numbers
///   compare numerically. Other type pairings are unequal and unordered.
/// - When the value is an array, the comparison holds if it holds for some
///   element (`ne`: if no element is equal).
/// - A nested value path `a[f]` holds if `a` (an object, or an array with
///   some object element) matches `f`.
/// - Trees deeper than [`MAX_FILTER_DEPTH`] (which [`super::parse_filter`]
///   never returns) match nothing.
pub fn matches_item_with(expr: &Expr, item: &Json, case_exact: bool) -> bool {
    expr.depth() <= MAX_FILTER_DEPTH && eval(expr, item, case_exact)
}

fn eval(expr: &Expr, item: &Json, case_exact: bool) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, item, case_exact) && eval(b, item, case_exact),
        Expr::Or(a, b) => eval(a, item, case_exact) || eval(b, item, case_exact),
        Expr::Not(a) => !eval(a, item, case_exact),
        Expr::Present(path) => lookup(item, path).is_some(),
        Expr::Compare(path, op, value) => {
            let actual = lookup(item, path);
            match (op, value) {
                (CompareOp::Eq, Value::Null) => actual.is_none(),
                (CompareOp::Ne, Value::Null) => actual.is_some(),
                (_, Value::Null) => false,
                (CompareOp::Ne, _) => !actual.is_some_and(|a| any_eq(a, value, case_exact)),
                _ => actual.is_some_and(|a| any_holds(a, *op, value, case_exact)),
            }
        }
        Expr::ValuePath(path, inner) => match lookup(item, path) {
            Some(Json::Array(items)) => items
                .iter()
                .any(|i| i.is_object() && eval(inner, i, case_exact)),
            Some(obj @ Json::Object(_)) => eval(inner, obj, case_exact),
            _ => false,
        },
    }
}

/// The present (non-empty) value `path` names in `item`.
fn lookup<'j>(item: &'j Json, path: &AttrPath) -> Option<&'j Json> {
    if path.urn.is_some() {
        return None;
    }
    let value = match item {
        Json::Object(map) => {
            let top = field(map, &path.attr)?;
            match &path.sub_attr {
                None => top,
                Some(sub) => match top {
                    Json::Object(inner) => field(inner, sub)?,
                    _ => return None,
                },
            }
        }
        other if path.sub_attr.is_none() && path.attr.eq_ignore_ascii_case("value") => other,
        _ => return None,
    };
    is_present(value).then_some(value)
}

fn field<'j>(map: &'j serde_json::Map<String, Json>, name: &str) -> Option<&'j Json> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn is_present(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
        Json::Bool(_) | Json::Number(_) => true,
    }
}

fn any_eq(actual: &Json, expected: &Value, case_exact: bool) -> bool {
    any_holds(actual, CompareOp::Eq, expected, case_exact)
}

fn any_holds(actual: &Json, op: CompareOp, expected: &Value, case_exact: bool) -> bool {
    match actual {
        Json::Array(items) => items.iter().any(|i| holds(i, op, expected, case_exact)),
        other => holds(other, op, expected, case_exact),
    }
}

/// `actual op expected` for one scalar (`ne` is handled by the caller).
fn holds(actual: &Json, op: CompareOp, expected: &Value, case_exact: bool) -> bool {
    match (actual, expected) {
        (Json::String(a), Value::String(b)) => compare_strings(a, op, b, case_exact),
        (Json::Bool(a), Value::Bool(b)) => bool_op(op, *a, *b),
        (Json::String(a), Value::Bool(b)) => parse_bool(a).is_some_and(|a| bool_op(op, a, *b)),
        (Json::Bool(a), Value::String(b)) => parse_bool(b).is_some_and(|b| bool_op(op, *a, b)),
        (Json::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordering_op(op, o)),
            _ => false,
        },
        _ => false,
    }
}

fn bool_op(op: CompareOp, a: bool, b: bool) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        _ => false,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `eq ne gt ge lt le` from an ordering; `co sw ew` never.
fn ordering_op(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// String comparison; also used by [`super::pb`] for the constant `type`.
pub(super) fn compare_strings(a: &str, op: CompareOp, b: &str, case_exact: bool) -> bool {
    if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
        && let (Ok(ta), Ok(tb)) = (
            chrono::DateTime::parse_from_rfc3339(a),
            chrono::DateTime::parse_from_rfc3339(b),
        )
    {
        return ordering_op(op, ta.cmp(&tb));
    }
    let (a, b) = if case_exact {
        (a.to_owned(), b.to_owned())
    } else {
        (a.to_lowercase(), b.to_lowercase())
    };
    match op {
        CompareOp::Co => a.contains(&b),
        CompareOp::Sw => a.starts_with(&b),
        CompareOp::Ew => a.ends_with(&b),
        _ => ordering_op(op, a.cmp(&b)),
    }
}
