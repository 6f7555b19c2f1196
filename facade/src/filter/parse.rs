//! A recursive-descent parser for the RFC 7644 §3.4.2.2 filter grammar and
//! RFC 7644 §3.5.2 PATCH paths.
//!
//! ```text
//! filter    = andChain *("or" andChain)
//! andChain  = term *("and" term)
//! term      = "(" filter ")" / "not" "(" filter ")" / valuePath / attrExp
//! valuePath = attrPath "[" valFilter "]" ["." ATTRNAME (SP "pr" / SP compareOp SP compValue)]
//! attrExp   = attrPath SP "pr" / attrPath SP compareOp SP compValue
//! ```
//! `valFilter` is `filter` without value paths. Whitespace runs are allowed
//! between any two tokens. Recursion only happens on `(` and `[`, and is
//! bounded by [`MAX_FILTER_DEPTH`].

use super::ast::{AttrPath, CompareOp, Expr, PatchPath, Value};
use super::{FilterError, MAX_FILTER_DEPTH, MAX_FILTER_LEN};

/// Parses a SCIM filter.
pub fn parse_filter(input: &str) -> Result<Expr, FilterError> {
    check_len(input)?;
    let mut p = Parser::new(input);
    let (expr, _) = p.filter(0, false)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.syntax("unexpected input after the filter"));
    }
    Ok(expr)
}

/// Parses a PATCH operation's `path`.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    check_len(input)?;
    let mut p = Parser::new(input);
    p.skip_ws();
    if !p.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        return Err(p.syntax("expected an attribute name"));
    }
    let attr = p.attr_path()?;
    p.skip_ws();
    let mut path = PatchPath {
        attr,
        filter: None,
        sub_attr: None,
    };
    if p.peek() == Some(b'[') {
        if path.attr.sub_attr.is_some() {
            return Err(p.syntax("a value filter must follow an attribute without sub-attribute"));
        }
        p.pos += 1;
        let nest = p.enter(0)?;
        let (inner, depth) = p.filter(nest, true)?;
        node_depth(depth + 1)?;
        p.skip_ws();
        p.expect(b']', "missing closing bracket")?;
        path.filter = Some(inner);
        p.skip_ws();
        if p.peek() == Some(b'.') {
            p.pos += 1;
            path.sub_attr = Some(p.attr_name()?.to_owned());
        }
    }
    p.skip_ws();
    if !p.at_end() {
        return Err(p.syntax("unexpected input after the path"));
    }
    Ok(path)
}

fn check_len(input: &str) -> Result<(), FilterError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(FilterError::TooLong {
            max: MAX_FILTER_LEN,
        });
    }
    Ok(())
}

/// Refuses a tree deeper than [`MAX_FILTER_DEPTH`].
fn node_depth(depth: usize) -> Result<usize, FilterError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(FilterError::TooDeep {
            max: MAX_FILTER_DEPTH,
        });
    }
    Ok(depth)
}

/// Characters of a name-like token: ATTRNAME characters plus the `:` and `.`
/// of URNs and sub-attributes.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'$' | b':' | b'.')
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'$')
}

/// `ALPHA *(ALPHA / DIGIT / "-" / "_" / "$")`
fn is_attr_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic()) && bytes.all(is_name_byte)
}

/// A parsed expression and the depth of its tree.
type Parsed = (Expr, usize);

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    /// Byte offset; always on a character boundary.
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            bytes: src.as_bytes(),
            pos: 0,
        }
    }

    fn syntax(&self, what: &'static str) -> FilterError {
        self.syntax_at(what, self.pos)
    }

    fn syntax_at(&self, what: &'static str, byte_pos: usize) -> FilterError {
        let position = self
            .src
            .get(..byte_pos)
            .map_or(byte_pos, |s| s.chars().count());
        FilterError::Syntax { what, position }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), FilterError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(what))
        }
    }

    /// One more level of parentheses or brackets.
    fn enter(&self, nest: usize) -> Result<usize, FilterError> {
        if nest >= MAX_FILTER_DEPTH {
            return Err(FilterError::TooDeep {
                max: MAX_FILTER_DEPTH,
            });
        }
        Ok(nest + 1)
    }

    /// The end of the run of bytes satisfying `pred` starting at `from`.
    fn run_end(&self, from: usize, pred: fn(u8) -> bool) -> usize {
        let mut end = from;
        while self.bytes.get(end).copied().is_some_and(pred) {
            end += 1;
        }
        end
    }

    /// Whether the next token (after whitespace) is the keyword `kw`; if so,
    /// consumes it.
    fn keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let end = self.run_end(self.pos, is_word_byte);
        if self.src[self.pos..end].eq_ignore_ascii_case(kw) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// `andChain *("or" andChain)`
    fn filter(&mut self, nest: usize, in_brackets: bool) -> Result<Parsed, FilterError> {
        let (mut left, mut depth) = self.and_chain(nest, in_brackets)?;
        while self.keyword("or") {
            let (right, d) = self.and_chain(nest, in_brackets)?;
            depth = node_depth(1 + depth.max(d))?;
            left = Expr::or(left, right);
        }
        Ok((left, depth))
    }

    /// `term *("and" term)`
    fn and_chain(&mut self, nest: usize, in_brackets: bool) -> Result<Parsed, FilterError> {
        let (mut left, mut depth) = self.term(nest, in_brackets)?;
        while self.keyword("and") {
            let (right, d) = self.term(nest, in_brackets)?;
            depth = node_depth(1 + depth.max(d))?;
            left = Expr::and(left, right);
        }
        Ok((left, depth))
    }

    fn term(&mut self, nest: usize, in_brackets: bool) -> Result<Parsed, FilterError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.syntax("unexpected end of filter")),
            Some(b'(') => {
                self.pos += 1;
                let inner = self.filter(self.enter(nest)?, in_brackets)?;
                self.skip_ws();
                self.expect(b')', "missing closing parenthesis")?;
                Ok(inner)
            }
            Some(b) if b.is_ascii_alphabetic() => {
                if let Some(negated) = self.not(nest, in_brackets)? {
                    return Ok(negated);
                }
                let path_start = self.pos;
                let path = self.attr_path()?;
                self.skip_ws();
                if self.peek() != Some(b'[') {
                    return Ok((self.attr_exp(path)?, 1));
                }
                if in_brackets {
                    return Err(self.syntax("value filters cannot be nested"));
                }
                if path.sub_attr.is_some() {
                    return Err(self.syntax_at(
                        "a value filter must follow an attribute without sub-attribute",
                        path_start,
                    ));
                }
                self.pos += 1;
                let (inner, d) = self.filter(self.enter(nest)?, true)?;
                self.skip_ws();
                self.expect(b']', "missing closing bracket")?;
                self.skip_ws();
                if self.peek() != Some(b'.') {
                    let depth = node_depth(1 + d)?;
                    return Ok((Expr::ValuePath(path, Box::new(inner)), depth));
                }
                // Entra: `emails[type eq "work"].value eq "x"` means
                // `emails[type eq "work" and value eq "x"]`.
                self.pos += 1;
                let sub = AttrPath::simple(self.attr_name()?);
                let tail = self.attr_exp(sub)?;
                let depth = node_depth(2 + d)?;
                Ok((
                    Expr::ValuePath(path, Box::new(Expr::and(inner, tail))),
                    depth,
                ))
            }
            Some(_) => Err(self.syntax("expected an attribute name, '(' or 'not'")),
        }
    }

    /// `"not" "(" filter ")"`; `None` (and nothing consumed) when the next
    /// word is not `not` followed by `(` (it may be an attribute named `not`).
    fn not(&mut self, nest: usize, in_brackets: bool) -> Result<Option<Parsed>, FilterError> {
        let start = self.pos;
        if !self.keyword("not") {
            return Ok(None);
        }
        self.skip_ws();
        if self.peek() != Some(b'(') {
            self.pos = start;
            return Ok(None);
        }
        self.pos += 1;
        let (inner, d) = self.filter(self.enter(nest)?, in_brackets)?;
        self.skip_ws();
        self.expect(b')', "missing closing parenthesis")?;
        Ok(Some((Expr::negate(inner), node_depth(1 + d)?)))
    }

    /// `[URN ":"] ATTRNAME ["." ATTRNAME]`; the URN is everything up to the
    /// last `:` (URNs contain dots, e.g. `2.0`).
    fn attr_path(&mut self) -> Result<AttrPath, FilterError> {
        let start = self.pos;
        let end = self.run_end(start, is_word_byte);
        let word = &self.src[start..end];
        let (urn, rest) = match word.rsplit_once(':') {
            Some((urn, rest)) => {
                let scheme_ok = urn.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("urn:"));
                if !scheme_ok || urn.len() <= 4 {
                    return Err(self.syntax_at("invalid schema URN in attribute path", start));
                }
                (Some(urn.to_owned()), rest)
            }
            None => (None, word),
        };
        let (attr, sub_attr) = match rest.split_once('.') {
            Some((attr, sub)) => (attr, Some(sub)),
            None => (rest, None),
        };
        if !is_attr_name(attr) || !sub_attr.is_none_or(is_attr_name) {
            return Err(self.syntax_at("invalid attribute name", start));
        }
        self.pos = end;
        Ok(AttrPath {
            urn,
            attr: attr.to_owned(),
            sub_attr: sub_attr.map(str::to_owned),
        })
    }

    /// A bare `ATTRNAME` (after `].`).
    fn attr_name(&mut self) -> Result<&'a str, FilterError> {
        let start = self.pos;
        let end = self.run_end(start, is_name_byte);
        let name = &self.src[start..end];
        if !is_attr_name(name) {
            return Err(self.syntax_at("invalid attribute name", start));
        }
        self.pos = end;
        Ok(name)
    }

    /// `"pr"` or `compareOp compValue`, after an attribute path.
    fn attr_exp(&mut self, path: AttrPath) -> Result<Expr, FilterError> {
        self.skip_ws();
        let start = self.pos;
        let end = self.run_end(start, |b| b.is_ascii_alphabetic());
        let word = &self.src[start..end];
        if word.is_empty() {
            return Err(self.syntax("expected an operator"));
        }
        if word.eq_ignore_ascii_case("pr") {
            self.pos = end;
            return Ok(Expr::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            return Err(self.syntax("unknown operator"));
        };
        self.pos = end;
        let value = self.value()?;
        Ok(Expr::Compare(path, op, value))
    }

    /// `false / null / true / number / string`
    fn value(&mut self) -> Result<Value, FilterError> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b) if b == b'-' || b.is_ascii_digit() => self.number().map(Value::Number),
            Some(b) if b.is_ascii_alphabetic() => {
                let end = self.run_end(self.pos, |b| b.is_ascii_alphanumeric());
                let word = &self.src[self.pos..end];
                let value = if word.eq_ignore_ascii_case("true") {
                    Value::Bool(true)
                } else if word.eq_ignore_ascii_case("false") {
                    Value::Bool(false)
                } else if word.eq_ignore_ascii_case("null") {
                    Value::Null
                } else {
                    return Err(
                        self.syntax("expected a value (string, number, true, false or null)")
                    );
                };
                self.pos = end;
                Ok(value)
            }
            None => Err(self.syntax("missing value")),
            Some(_) => Err(self.syntax("expected a value (string, number, true, false or null)")),
        }
    }

    /// A JSON string literal (the opening quote is at `self.pos`).
    fn string(&mut self) -> Result<String, FilterError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                return Err(self.syntax_at("unterminated string", open));
            };
            let c_pos = self.pos;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.syntax_at("unterminated string", open));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{08}'),
                        b'f' => out.push('\u{0c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape(c_pos)?),
                        _ => return Err(self.syntax_at("invalid escape in string", c_pos)),
                    }
                }
                c if u32::from(c) < 0x20 => {
                    return Err(self.syntax_at("control character in string", c_pos));
                }
                c => out.push(c),
            }
        }
    }

    /// The rest of `\uXXXX` (after the `u`), including a following low
    /// surrogate escape when the first is a high surrogate.
    fn unicode_escape(&mut self, esc_pos: usize) -> Result<char, FilterError> {
        let invalid = |p: &Self| p.syntax_at("invalid unicode escape in string", esc_pos);
        let high = self.hex4().ok_or_else(|| invalid(self))?;
        let code = match high {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u".as_slice()) {
                    return Err(invalid(self));
                }
                self.pos += 2;
                let low = self.hex4().ok_or_else(|| invalid(self))?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(invalid(self));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(invalid(self)),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| invalid(self))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(v)
    }

    /// A JSON number: `["-"] ("0" / 1-9 *DIGIT) ["." 1*DIGIT] [("e"/"E") ["+"/"-"] 1*DIGIT]`.
    fn number(&mut self) -> Result<serde_json::Number, FilterError> {
        let start = self.pos;
        let invalid = |p: &Self| p.syntax_at("invalid number", start);
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.pos = self.run_end(self.pos, |b| b.is_ascii_digit()),
            _ => return Err(invalid(self)),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            let end = self.run_end(self.pos + 1, |b| b.is_ascii_digit());
            if end == self.pos + 1 {
                return Err(invalid(self));
            }
            self.pos = end;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            let end = self.run_end(self.pos, |b| b.is_ascii_digit());
            if end == self.pos {
                return Err(invalid(self));
            }
            self.pos = end;
        }
        let text = &self.src[start..self.pos];
        if integer {
            if !negative && let Ok(n) = text.parse::<u64>() {
                return Ok(n.into());
            }
            if negative && let Ok(n) = text.parse::<i64>() {
                return Ok(n.into());
            }
        }
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .ok_or_else(|| self.syntax_at("number out of range", start))
    }
}
