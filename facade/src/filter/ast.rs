//! The filter tree and its canonical text form.

use std::fmt;

/// An attribute path: `[urn ":"] attr ["." subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// The schema URN prefix without the final `:`, as written (e.g.
    /// `urn:ietf:params:scim:schemas:core:2.0:User`).
    pub urn: Option<String>,
    /// The attribute name, as written (names are case-insensitive: compare
    /// with `eq_ignore_ascii_case`).
    pub attr: String,
    /// The sub-attribute name, as written.
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// A path without URN or sub-attribute.
    pub fn simple(attr: impl Into<String>) -> Self {
        Self {
            urn: None,
            attr: attr.into(),
            sub_attr: None,
        }
    }

    /// A path `attr.sub_attr` without URN.
    pub fn sub(attr: impl Into<String>, sub_attr: impl Into<String>) -> Self {
        Self {
            urn: None,
            attr: attr.into(),
            sub_attr: Some(sub_attr.into()),
        }
    }
}

/// A comparison value (`compValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A JSON string, unescaped.
    String(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A JSON number: integers that fit `u64`/`i64` stay exact, the rest are
    /// finite `f64`.
    Number(serde_json::Number),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `co`
    Co,
    /// `sw`
    Sw,
    /// `ew`
    Ew,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl CompareOp {
    /// Every operator.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator's keyword, lower-case.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator named by `word`, case-insensitively.
    pub fn from_keyword(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a and b`
    And(Box<Expr>, Box<Expr>),
    /// `a or b`
    Or(Box<Expr>, Box<Expr>),
    /// `not (a)`
    Not(Box<Expr>),
    /// `attr pr`
    Present(AttrPath),
    /// `attr op value`
    Compare(AttrPath, CompareOp, Value),
    /// `attr[filter]`: some item of the multi-valued `attr` matches `filter`,
    /// whose attribute paths name sub-attributes of the item.
    ///
    /// Entra's `emails[type eq "work"].value eq "x"` is represented as
    /// `ValuePath(emails, And(type eq "work", value eq "x"))`, the same tree as
    /// `emails[type eq "work" and value eq "x"]`, which it means.
    ValuePath(AttrPath, Box<Expr>),
}

impl Expr {
    /// `a and b`
    pub fn and(a: Expr, b: Expr) -> Expr {
        Expr::And(Box::new(a), Box::new(b))
    }

    /// `a or b`
    pub fn or(a: Expr, b: Expr) -> Expr {
        Expr::Or(Box::new(a), Box::new(b))
    }

    /// `not (a)`
    pub fn negate(a: Expr) -> Expr {
        Expr::Not(Box::new(a))
    }

    /// The depth of the tree as [`super::MAX_FILTER_DEPTH`] counts it: a
    /// comparison or presence test is 1 deep; `and`, `or`, `not` and value
    /// paths add one level. Computed without recursion, so any tree can be
    /// measured.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1)];
        while let Some((e, level)) = stack.pop() {
            deepest = deepest.max(level);
            match e {
                Expr::And(a, b) | Expr::Or(a, b) => {
                    stack.push((a, level + 1));
                    stack.push((b, level + 1));
                }
                Expr::Not(a) | Expr::ValuePath(_, a) => stack.push((a, level + 1)),
                Expr::Present(_) | Expr::Compare(..) => {}
            }
        }
        deepest
    }
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `attrPath`, or
/// `attrPath "[" valFilter "]" ["." subAttr]`.
///
/// `name.givenName` is `{attr: name.givenName, filter: None, sub_attr: None}`;
/// `emails[type eq "work"].value` is
/// `{attr: emails, filter: Some(type eq "work"), sub_attr: Some("value")}`.
/// `attr.sub_attr` is `None` whenever `filter` is `Some`, and `sub_attr` is
/// `None` whenever `filter` is `None`.
///
/// A path that is only a schema URN (e.g.
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`) parses with
/// its last segment as the attribute (`{urn: "…:2.0", attr: "User"}`);
/// callers that care can recognise `urn + ":" + attr` as a schema URN.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with its sub-attribute when there is no filter).
    pub attr: AttrPath,
    /// The value filter in brackets, if any.
    pub filter: Option<Expr>,
    /// The sub-attribute after the brackets, if any.
    pub sub_attr: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write_json_string(f, s),
            Value::Bool(true) => f.write_str("true"),
            Value::Bool(false) => f.write_str("false"),
            Value::Null => f.write_str("null"),
            Value::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Writes `s` as a JSON string literal (non-ASCII characters stay as they
/// are; quotes, backslashes and control characters are escaped).
fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    use fmt::Write as _;
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{08}' => f.write_str("\\b")?,
            '\u{0c}' => f.write_str("\\f")?,
            c if u32::from(c) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Canonical text: single spaces, lower-case keywords, parentheses only
/// where the tree needs them (`and`/`or` associate to the left, `and` binds
/// tighter than `or`), strings re-escaped. Parses back to the same tree.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => {
                write_grouped(f, a, matches!(**a, Expr::Or(..)))?;
                f.write_str(" and ")?;
                write_grouped(f, b, matches!(**b, Expr::And(..) | Expr::Or(..)))
            }
            Expr::Or(a, b) => {
                write!(f, "{a} or ")?;
                write_grouped(f, b, matches!(**b, Expr::Or(..)))
            }
            Expr::Not(a) => write!(f, "not ({a})"),
            Expr::Present(path) => write!(f, "{path} pr"),
            Expr::Compare(path, op, value) => write!(f, "{path} {op} {value}"),
            Expr::ValuePath(path, inner) => write!(f, "{path}[{inner}]"),
        }
    }
}

fn write_grouped(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}
