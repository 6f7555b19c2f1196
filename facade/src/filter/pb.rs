//! Mapping a parsed filter over Users onto the core's filter tree.

use provisioning_proto::pb::{
    Attribute, Comparison, Filter, FilterList, Operator, comparison, filter::Kind,
};

use super::ast::{AttrPath, CompareOp, Expr, Value};
use super::eval::compare_strings;
use super::{FilterError, MAX_FILTER_DEPTH};

/// The core User schema, the only URN attribute paths may carry.
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// The only `type` the service reports for the stored email and phone number.
const ITEM_TYPE: &str = "work";

/// Maps a filter over the User resource onto the core's [`Filter`].
///
/// Attribute names and the URN prefix are case-insensitive; the only URN
/// accepted is the core User schema. Attributes: `id`, `externalId`,
/// `userName`, `name.givenName`, `name.familyName`, `timezone` (strings),
/// `active` (boolean: `eq`/`ne` with `true`/`false` or the strings
/// `"true"`/`"false"`), `meta.created`, `meta.lastModified` (RFC 3339
/// date-time strings; not `co`/`sw`/`ew`), and the multi-valued `emails`,
/// `phoneNumbers`, `roles`, whose `value` is the stored email, phone number or
/// role.
///
/// The service keeps at most one item of each multi-valued attribute and
/// reports it with `type: "work"` (emails and phone numbers) and
/// `primary: true`, so `type` and `primary` are decided here: such a
/// comparison becomes a constant, AND-ed with the presence of the attribute
/// (`emails.type eq "work"` is `present(EMAIL)`, `emails[type eq "home"]` is
/// `false`). A value path `emails[f]` ("some email matches f") becomes
/// `present(EMAIL) and f'`, where `f'` maps `value` comparisons to EMAIL
/// comparisons and `type`/`primary` to constants. The type of roles cannot be
/// filtered on.
///
/// `pr` is presence, `eq null` is `not present`, `ne null` is presence, `ne`
/// maps to [`Operator::Ne`] and `not` to `Filter.not` (the core makes both
/// true for an absent attribute). `name pr` is "a given or family name is
/// present"; `meta pr` is true. Nested `and`/`or` are flattened into one
/// [`FilterList`], constants are folded away where possible, and repeated
/// operands are dropped.
///
/// Unknown attributes, sub-attributes and URNs, and comparisons an attribute
/// does not support (numbers anywhere, booleans on strings, `gt` on booleans,
/// a non-date-time value for a date-time), are errors.
///
/// Trees deeper than [`MAX_FILTER_DEPTH`] (which [`super::parse_filter`] never
/// returns) are refused.
pub fn to_pb(expr: &Expr) -> Result<Filter, FilterError> {
    if expr.depth() > MAX_FILTER_DEPTH {
        return Err(FilterError::TooDeep {
            max: MAX_FILTER_DEPTH,
        });
    }
    translate(expr, None)
}

/// The kind of value a single-valued attribute holds.
#[derive(Clone, Copy)]
enum ValueKind {
    Str,
    Bool,
    Time,
}

/// What an attribute path names.
enum Target {
    /// A stored attribute the core filters on.
    Single(Attribute, ValueKind),
    /// `type` of the (single) stored item of a multi-valued attribute.
    ItemType(Attribute),
    /// `primary` of the (single) stored item of a multi-valued attribute.
    ItemPrimary(Attribute),
    /// A complex attribute named without a sub-attribute: present when any
    /// of these is (always, when empty).
    Complex(&'static [Attribute]),
}

/// `parent` is the attribute of the enclosing value path, when inside one.
fn translate(expr: &Expr, parent: Option<&AttrPath>) -> Result<Filter, FilterError> {
    match expr {
        Expr::And(..) => {
            let parts = chain(expr, true)
                .into_iter()
                .map(|e| translate(e, parent))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(and_all(parts))
        }
        Expr::Or(..) => {
            let parts = chain(expr, false)
                .into_iter()
                .map(|e| translate(e, parent))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(or_all(parts))
        }
        Expr::Not(inner) => Ok(negate(translate(inner, parent)?)),
        Expr::Present(path) => Ok(present_of(resolve_in(path, parent)?, parent.is_some())),
        Expr::Compare(path, op, value) => {
            compare_of(resolve_in(path, parent)?, *op, value, parent.is_some())
        }
        Expr::ValuePath(path, inner) => {
            if parent.is_some() {
                return Err(FilterError::Unsupported("value filters cannot be nested"));
            }
            let attr = match resolve(path)? {
                Target::Single(
                    a @ (Attribute::Email | Attribute::PhoneNumber | Attribute::Role),
                    _,
                ) if path.sub_attr.is_none() => a,
                _ => {
                    return Err(FilterError::Unsupported(
                        "value filters apply only to emails, phoneNumbers and roles",
                    ));
                }
            };
            let inner = translate(inner, Some(path))?;
            Ok(and_all(vec![present(attr), inner]))
        }
    }
}

/// The operands of a chain of `and` (or of `or`), in order, without
/// recursion.
fn chain(expr: &Expr, and: bool) -> Vec<&Expr> {
    let mut parts = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::And(a, b) if and => {
                stack.push(b);
                stack.push(a);
            }
            Expr::Or(a, b) if !and => {
                stack.push(b);
                stack.push(a);
            }
            other => parts.push(other),
        }
    }
    parts
}

/// Resolves `path`, relative to the value path's attribute when inside one
/// (`type` inside `emails[...]` is `emails.type`).
fn resolve_in(path: &AttrPath, parent: Option<&AttrPath>) -> Result<Target, FilterError> {
    match parent {
        None => resolve(path),
        Some(parent) => {
            if path.urn.is_some() || path.sub_attr.is_some() {
                return Err(FilterError::UnknownSubAttribute);
            }
            resolve(&AttrPath {
                urn: parent.urn.clone(),
                attr: parent.attr.clone(),
                sub_attr: Some(path.attr.clone()),
            })
        }
    }
}

fn resolve(path: &AttrPath) -> Result<Target, FilterError> {
    if let Some(urn) = &path.urn
        && !urn.eq_ignore_ascii_case(USER_SCHEMA)
    {
        return Err(FilterError::UnsupportedSchema);
    }
    let attr = path.attr.to_ascii_lowercase();
    let sub = path.sub_attr.as_deref().map(str::to_ascii_lowercase);
    let single = |a, k| match sub {
        None => Ok(Target::Single(a, k)),
        Some(_) => Err(FilterError::UnknownSubAttribute),
    };
    match attr.as_str() {
        "id" => single(Attribute::Id, ValueKind::Str),
        "externalid" => single(Attribute::ExternalId, ValueKind::Str),
        "username" => single(Attribute::UserName, ValueKind::Str),
        "timezone" => single(Attribute::Timezone, ValueKind::Str),
        "active" => single(Attribute::Active, ValueKind::Bool),
        "name" => match sub.as_deref() {
            None => Ok(Target::Complex(&[
                Attribute::GivenName,
                Attribute::FamilyName,
            ])),
            Some("givenname") => Ok(Target::Single(Attribute::GivenName, ValueKind::Str)),
            Some("familyname") => Ok(Target::Single(Attribute::FamilyName, ValueKind::Str)),
            Some(_) => Err(FilterError::UnknownSubAttribute),
        },
        "meta" => match sub.as_deref() {
            None => Ok(Target::Complex(&[])),
            Some("created") => Ok(Target::Single(Attribute::Created, ValueKind::Time)),
            Some("lastmodified") => Ok(Target::Single(Attribute::LastModified, ValueKind::Time)),
            Some(_) => Err(FilterError::UnknownSubAttribute),
        },
        "emails" | "phonenumbers" | "roles" => {
            let a = match attr.as_str() {
                "emails" => Attribute::Email,
                "phonenumbers" => Attribute::PhoneNumber,
                _ => Attribute::Role,
            };
            match sub.as_deref() {
                None | Some("value") => Ok(Target::Single(a, ValueKind::Str)),
                Some("type") if a == Attribute::Role => Err(FilterError::Unsupported(
                    "the type of roles cannot be filtered on",
                )),
                Some("type") => Ok(Target::ItemType(a)),
                Some("primary") => Ok(Target::ItemPrimary(a)),
                Some(_) => Err(FilterError::UnknownSubAttribute),
            }
        }
        _ => Err(FilterError::UnknownAttribute),
    }
}

/// Inside a value path (`in_item`), the item is known to exist.
fn present_of(target: Target, in_item: bool) -> Filter {
    match target {
        Target::ItemType(_) | Target::ItemPrimary(_) if in_item => constant(true),
        Target::Single(a, _) | Target::ItemType(a) | Target::ItemPrimary(a) => present(a),
        Target::Complex([]) => constant(true),
        Target::Complex(parts) => or_all(parts.iter().map(|a| present(*a)).collect()),
    }
}

const ONLY_EQ_NE: &str = "a boolean attribute supports only eq and ne";
const NULL_EQ_NE: &str = "null can only be compared with eq or ne";

/// Inside a value path (`in_item`), the item is known to exist, so `type` and
/// `primary` comparisons are plain constants; outside, they also need the
/// attribute to be present.
fn compare_of(
    target: Target,
    op: CompareOp,
    value: &Value,
    in_item: bool,
) -> Result<Filter, FilterError> {
    let item_constant = |a: Attribute, holds: bool| {
        if in_item {
            constant(holds)
        } else {
            and_all(vec![present(a), constant(holds)])
        }
    };
    match target {
        Target::Single(a, kind) => compare_single(a, kind, op, value),
        Target::ItemType(a) => {
            let holds = match value {
                Value::String(s) => compare_strings(ITEM_TYPE, op, s, false),
                Value::Null => null_constant(op, true)?,
                Value::Bool(_) | Value::Number(_) => {
                    return Err(FilterError::Unsupported("type compares with strings"));
                }
            };
            Ok(item_constant(a, holds))
        }
        Target::ItemPrimary(a) => {
            let holds = match value {
                Value::Null => null_constant(op, true)?,
                v => {
                    let b = bool_of(v)?;
                    match op {
                        CompareOp::Eq => b,
                        CompareOp::Ne => !b,
                        _ => return Err(FilterError::Unsupported(ONLY_EQ_NE)),
                    }
                }
            };
            Ok(item_constant(a, holds))
        }
        Target::Complex(_) => Err(FilterError::Unsupported(
            "comparing a complex attribute needs a sub-attribute",
        )),
    }
}

/// `eq null` / `ne null` against a value that is (`present`) or is not
/// there.
fn null_constant(op: CompareOp, present: bool) -> Result<bool, FilterError> {
    match op {
        CompareOp::Eq => Ok(!present),
        CompareOp::Ne => Ok(present),
        _ => Err(FilterError::Unsupported(NULL_EQ_NE)),
    }
}

fn bool_of(value: &Value) -> Result<bool, FilterError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(FilterError::Unsupported(
            "a boolean attribute compares with true or false",
        )),
    }
}

fn compare_single(
    a: Attribute,
    kind: ValueKind,
    op: CompareOp,
    value: &Value,
) -> Result<Filter, FilterError> {
    if *value == Value::Null {
        return match op {
            CompareOp::Eq => Ok(negate(present(a))),
            CompareOp::Ne => Ok(present(a)),
            _ => Err(FilterError::Unsupported(NULL_EQ_NE)),
        };
    }
    let pb_value = match kind {
        ValueKind::Str => match value {
            Value::String(s) => comparison::Value::StringValue(s.clone()),
            Value::Number(_) => {
                return Err(FilterError::Unsupported(
                    "this attribute compares with strings, not numbers",
                ));
            }
            _ => {
                return Err(FilterError::Unsupported(
                    "this attribute compares with strings, not booleans",
                ));
            }
        },
        ValueKind::Bool => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(FilterError::Unsupported(ONLY_EQ_NE));
            }
            comparison::Value::BoolValue(bool_of(value)?)
        }
        ValueKind::Time => {
            if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                return Err(FilterError::Unsupported(
                    "a date-time attribute supports only eq, ne, gt, ge, lt and le",
                ));
            }
            let Value::String(s) = value else {
                return Err(FilterError::Unsupported(
                    "a date-time attribute compares with an RFC 3339 date-time string",
                ));
            };
            let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| {
                FilterError::Unsupported(
                    "a date-time attribute compares with an RFC 3339 date-time string",
                )
            })?;
            let nanos = t.timestamp_subsec_nanos().min(999_999_999);
            comparison::Value::TimeValue(prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: i32::try_from(nanos).unwrap_or(0),
            })
        }
    };
    Ok(Filter {
        kind: Some(Kind::Compare(Comparison {
            attribute: a as i32,
            op: operator(op) as i32,
            value: Some(pb_value),
        })),
    })
}

fn operator(op: CompareOp) -> Operator {
    match op {
        CompareOp::Eq => Operator::Eq,
        CompareOp::Ne => Operator::Ne,
        CompareOp::Co => Operator::Co,
        CompareOp::Sw => Operator::Sw,
        CompareOp::Ew => Operator::Ew,
        CompareOp::Gt => Operator::Gt,
        CompareOp::Ge => Operator::Ge,
        CompareOp::Lt => Operator::Lt,
        CompareOp::Le => Operator::Le,
    }
}

fn present(a: Attribute) -> Filter {
    Filter {
        kind: Some(Kind::Present(a as i32)),
    }
}

fn constant(b: bool) -> Filter {
    Filter {
        kind: Some(Kind::Constant(b)),
    }
}

fn negate(f: Filter) -> Filter {
    match f.kind {
        Some(Kind::Constant(b)) => constant(!b),
        kind => Filter {
            kind: Some(Kind::Not(Box::new(Filter { kind }))),
        },
    }
}

/// `and` of `parts`: nested `and` lists spliced in, `true` dropped, `false`
/// absorbing, repeats dropped, a single operand returned as is.
fn and_all(parts: Vec<Filter>) -> Filter {
    fold(parts, true)
}

/// `or` of `parts`, folded like [`and_all`] with the roles of `true` and
/// `false` swapped.
fn or_all(parts: Vec<Filter>) -> Filter {
    fold(parts, false)
}

fn fold(parts: Vec<Filter>, and: bool) -> Filter {
    // `and`: true is the identity and false absorbs; `or`: the reverse.
    let identity = and;
    let mut out: Vec<Filter> = Vec::new();
    for part in parts {
        match part.kind {
            Some(Kind::Constant(b)) if b == identity => {}
            Some(Kind::Constant(_)) => return constant(!identity),
            Some(Kind::And(list)) if and => list
                .filters
                .into_iter()
                .for_each(|f| push_unique(&mut out, f)),
            Some(Kind::Or(list)) if !and => list
                .filters
                .into_iter()
                .for_each(|f| push_unique(&mut out, f)),
            kind => push_unique(&mut out, Filter { kind }),
        }
    }
    if out.len() > 1 {
        let list = FilterList { filters: out };
        return Filter {
            kind: Some(if and { Kind::And(list) } else { Kind::Or(list) }),
        };
    }
    out.pop().unwrap_or_else(|| constant(identity))
}

fn push_unique(out: &mut Vec<Filter>, f: Filter) {
    if !out.contains(&f) {
        out.push(f);
    }
}
