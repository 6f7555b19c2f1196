use proptest::prelude::*;
use provisioning_proto::pb::{self, Attribute, Operator, comparison, filter::Kind};
use serde_json::json;

use super::*;

// ------------------------------------------------------------------ helpers

fn parse(s: &str) -> Expr {
    parse_filter(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn parse_err(s: &str) -> FilterError {
    match parse_filter(s) {
        Ok(e) => panic!("{s:?} should not parse, got {e:?}"),
        Err(e) => e,
    }
}

fn path(attr: &str) -> AttrPath {
    AttrPath::simple(attr)
}

fn sub(attr: &str, sub_attr: &str) -> AttrPath {
    AttrPath::sub(attr, sub_attr)
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn cmp(p: AttrPath, op: CompareOp, v: Value) -> Expr {
    Expr::Compare(p, op, v)
}

fn pres(p: AttrPath) -> Expr {
    Expr::Present(p)
}

fn vp(p: AttrPath, inner: Expr) -> Expr {
    Expr::ValuePath(p, Box::new(inner))
}

fn assert_round_trip(e: &Expr) {
    let text = e.to_string();
    assert_eq!(
        parse_filter(&text).as_ref(),
        Ok(e),
        "canonical text {text:?}"
    );
}

fn pb_of(s: &str) -> pb::Filter {
    to_pb(&parse(s)).unwrap_or_else(|e| panic!("{s:?} should map: {e}"))
}

fn pb_err(s: &str) -> FilterError {
    match to_pb(&parse(s)) {
        Ok(f) => panic!("{s:?} should not map, got {f:?}"),
        Err(e) => e,
    }
}

fn f(kind: Kind) -> pb::Filter {
    pb::Filter { kind: Some(kind) }
}

fn present(a: Attribute) -> pb::Filter {
    f(Kind::Present(a as i32))
}

fn constant(b: bool) -> pb::Filter {
    f(Kind::Constant(b))
}

fn not(x: pb::Filter) -> pb::Filter {
    f(Kind::Not(Box::new(x)))
}

fn and(xs: Vec<pb::Filter>) -> pb::Filter {
    f(Kind::And(pb::FilterList { filters: xs }))
}

fn or(xs: Vec<pb::Filter>) -> pb::Filter {
    f(Kind::Or(pb::FilterList { filters: xs }))
}

fn compare(a: Attribute, op: Operator, v: comparison::Value) -> pb::Filter {
    f(Kind::Compare(pb::Comparison {
        attribute: a as i32,
        op: op as i32,
        value: Some(v),
    }))
}

fn str_cmp(a: Attribute, op: Operator, s: &str) -> pb::Filter {
    compare(a, op, comparison::Value::StringValue(s.to_owned()))
}

fn bool_cmp(a: Attribute, op: Operator, b: bool) -> pb::Filter {
    compare(a, op, comparison::Value::BoolValue(b))
}

fn time_cmp(a: Attribute, op: Operator, seconds: i64, nanos: i32) -> pb::Filter {
    compare(
        a,
        op,
        comparison::Value::TimeValue(prost_types::Timestamp { seconds, nanos }),
    )
}

// ------------------------------------------------------------- the grammar

/// Every example filter of RFC 7644 §3.4.2.2.
const RFC_EXAMPLES: &[&str] = &[
    r#"userName eq "bjensen""#,
    r#"name.familyName co "O'Malley""#,
    r#"userName sw "J""#,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
    r#"title pr"#,
    r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
    r#"title pr and userType eq "Employee""#,
    r#"title pr or userType eq "Intern""#,
    r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType eq "Employee" and (emails.type eq "work")"#,
    r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
];

/// What Okta and Microsoft Entra send.
const IDP_EXAMPLES: &[&str] = &[
    r#"userName eq "jane@example.com""#,
    r#"userName eq "jane.doe@example.com""#,
    r#"externalId eq "00u1abcd2EFGHIJKL3x7""#,
    r#"emails[type eq "work"].value eq "jane@example.com""#,
    r#"emails[type eq "work"].value eq "jane@example.com" and active eq true"#,
    r#"phoneNumbers[type eq "work"].value eq "+1 555 0100""#,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "jane@example.com""#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "1234""#,
];

#[test]
fn filter_rfc_examples_parse_and_round_trip() {
    for s in RFC_EXAMPLES.iter().chain(IDP_EXAMPLES) {
        assert_round_trip(&parse(s));
    }
}

#[test]
fn filter_rfc_examples_parse_to_the_right_trees() {
    assert_eq!(
        parse(RFC_EXAMPLES[0]),
        cmp(path("userName"), CompareOp::Eq, string("bjensen"))
    );
    assert_eq!(
        parse(RFC_EXAMPLES[1]),
        cmp(sub("name", "familyName"), CompareOp::Co, string("O'Malley"))
    );
    assert_eq!(
        parse(RFC_EXAMPLES[3]),
        cmp(
            AttrPath {
                urn: Some("urn:ietf:params:scim:schemas:core:2.0:User".into()),
                attr: "userName".into(),
                sub_attr: None,
            },
            CompareOp::Sw,
            string("J")
        )
    );
    assert_eq!(parse(RFC_EXAMPLES[4]), pres(path("title")));
    assert_eq!(
        parse(RFC_EXAMPLES[13]),
        Expr::and(
            cmp(path("userType"), CompareOp::Ne, string("Employee")),
            Expr::negate(Expr::or(
                cmp(path("emails"), CompareOp::Co, string("example.com")),
                cmp(sub("emails", "value"), CompareOp::Co, string("example.org")),
            )),
        )
    );
    assert_eq!(
        parse(RFC_EXAMPLES[16]),
        Expr::or(
            vp(
                path("emails"),
                Expr::and(
                    cmp(path("type"), CompareOp::Eq, string("work")),
                    cmp(path("value"), CompareOp::Co, string("@example.com")),
                )
            ),
            vp(
                path("ims"),
                Expr::and(
                    cmp(path("type"), CompareOp::Eq, string("xmpp")),
                    cmp(path("value"), CompareOp::Co, string("@foo.com")),
                )
            ),
        )
    );
}

#[test]
fn filter_okta_user_name() {
    assert_eq!(
        parse(r#"userName eq "jane@example.com""#),
        cmp(path("userName"), CompareOp::Eq, string("jane@example.com"))
    );
}

#[test]
fn filter_entra_value_path_with_sub_attribute() {
    let entra = parse(r#"emails[type eq "work"].value eq "x@example.com""#);
    assert_eq!(
        entra,
        vp(
            path("emails"),
            Expr::and(
                cmp(path("type"), CompareOp::Eq, string("work")),
                cmp(path("value"), CompareOp::Eq, string("x@example.com")),
            )
        )
    );
    assert_eq!(
        entra,
        parse(r#"emails[type eq "work" and value eq "x@example.com"]"#)
    );
    assert_eq!(
        entra.to_string(),
        r#"emails[type eq "work" and value eq "x@example.com"]"#
    );
    // Followed by more of the filter, with lenient spacing and `pr`.
    assert_eq!(
        parse(r#"emails[ type eq "work" ] .value pr and active eq true"#),
        Expr::and(
            vp(
                path("emails"),
                Expr::and(
                    cmp(path("type"), CompareOp::Eq, string("work")),
                    pres(path("value"))
                )
            ),
            cmp(path("active"), CompareOp::Eq, Value::Bool(true)),
        )
    );
    // An `or` inside the brackets stays grouped.
    let grouped = parse(r#"emails[type eq "work" or type eq "home"].value eq "x""#);
    assert_eq!(
        grouped.to_string(),
        r#"emails[(type eq "work" or type eq "home") and value eq "x"]"#
    );
    assert_round_trip(&grouped);
    // Without a comparison after the sub-attribute it is not a filter.
    parse_err(r#"emails[type eq "work"].value"#);
    parse_err(r#"emails[type eq "work"].value.x eq "y""#);
    parse_err(r#"emails[type eq "work"]. value eq "y""#);
}

#[test]
fn filter_urn_qualified_names() {
    let e =
        parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "1""#);
    assert_eq!(
        e,
        cmp(
            AttrPath {
                urn: Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
                attr: "manager".into(),
                sub_attr: Some("value".into()),
            },
            CompareOp::Eq,
            string("1")
        )
    );
    let e = parse(r#"URN:IETF:params:scim:schemas:core:2.0:User:name.givenName pr"#);
    assert_eq!(
        e,
        pres(AttrPath {
            urn: Some("URN:IETF:params:scim:schemas:core:2.0:User".into()),
            attr: "name".into(),
            sub_attr: Some("givenName".into()),
        })
    );
    // Not a URN, or no attribute after it.
    assert!(matches!(
        parse_err("foo:bar pr"),
        FilterError::Syntax { .. }
    ));
    assert!(matches!(
        parse_err("urn:ietf:params:scim:schemas:core:2.0:User: pr"),
        FilterError::Syntax { .. }
    ));
    parse_err("urn:userName pr");
}

#[test]
fn filter_attribute_names() {
    assert_eq!(parse("a-b_c$1 pr"), pres(path("a-b_c$1")));
    parse_err("1abc pr");
    parse_err("a.b.c pr");
    parse_err("a. pr");
    parse_err("_a pr");
    // `not` not followed by `(` is an attribute name.
    assert_eq!(parse("not pr"), pres(path("not")));
    assert_eq!(
        parse("and pr and or pr"),
        Expr::and(pres(path("and")), pres(path("or")))
    );
}

#[test]
fn filter_string_escapes() {
    let e = parse(r#"userName eq "a\"b\\c\/d\b\f\n\r\t\u00e9\u00C9\ud83d\ude00é""#);
    assert_eq!(
        e,
        cmp(
            path("userName"),
            CompareOp::Eq,
            string("a\"b\\c/d\u{8}\u{c}\n\r\téÉ😀é")
        )
    );
    assert_round_trip(&e);
    assert_eq!(
        e.to_string(),
        "userName eq \"a\\\"b\\\\c/d\\b\\f\\n\\r\\téÉ😀é\""
    );
    let control = cmp(path("x"), CompareOp::Eq, string("\u{1}\u{7f}"));
    assert_eq!(control.to_string(), r#"x eq "\u0001\u007f""#);
    assert_round_trip(&control);
    for bad in [
        r#"x eq "\x""#,
        r#"x eq "\ud83d""#,
        r#"x eq "\ud83dx""#,
        r#"x eq "\ud83d\u0041""#,
        r#"x eq "\ude00""#,
        r#"x eq "\u12""#,
        r#"x eq "\u12g4""#,
        r#"x eq "abc"#,
        r#"x eq "abc\"#,
        "x eq \"a\u{1}b\"",
        "x eq \"a\nb\"",
    ] {
        assert!(
            matches!(parse_filter(bad), Err(FilterError::Syntax { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn filter_error_positions() {
    assert_eq!(
        parse_filter(r#"userName eq "abc"#),
        Err(FilterError::Syntax {
            what: "unterminated string",
            position: 12
        })
    );
    assert_eq!(
        parse_filter(r#"é eq "x""#),
        Err(FilterError::Syntax {
            what: "expected an attribute name, '(' or 'not'",
            position: 0
        })
    );
    assert_eq!(
        parse_filter(r#"ab eq "é" xyz"#),
        Err(FilterError::Syntax {
            what: "unexpected input after the filter",
            position: 10
        })
    );
    assert_eq!(
        parse_err(r#"userName eq "x"#).to_string(),
        "unterminated string at position 12"
    );
}

#[test]
fn filter_values() {
    let v = |s: &str| match parse(&format!("x eq {s}")) {
        Expr::Compare(_, _, v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(v("true"), Value::Bool(true));
    assert_eq!(v("FALSE"), Value::Bool(false));
    assert_eq!(v("Null"), Value::Null);
    assert_eq!(v("42"), Value::Number(42u64.into()));
    assert_eq!(v("-7"), Value::Number((-7i64).into()));
    assert_eq!(v("0"), Value::Number(0u64.into()));
    let Value::Number(n) = v("1.5e3") else {
        panic!("number")
    };
    assert_eq!(n.as_f64(), Some(1500.0));
    let Value::Number(n) = v("18446744073709551616") else {
        panic!("number")
    };
    assert!(n.is_f64());
    for bad in [
        "01", "1.", ".5", "-", "1e", "1e+", "1e400", "-x", "tru", "truex", "nul", "'x'",
    ] {
        parse_err(&format!("x eq {bad}"));
    }
}

#[test]
fn filter_operators_and_keywords_are_case_insensitive() {
    for op in CompareOp::ALL {
        for word in [op.as_str().to_owned(), op.as_str().to_uppercase()] {
            assert_eq!(
                parse(&format!(r#"userName {word} "x""#)),
                cmp(path("userName"), op, string("x"))
            );
        }
    }
    assert_eq!(
        parse(r#"title PR AnD userName Eq "x" oR NOT (a Pr)"#),
        Expr::or(
            Expr::and(
                pres(path("title")),
                cmp(path("userName"), CompareOp::Eq, string("x"))
            ),
            Expr::negate(pres(path("a"))),
        )
    );
    parse_err(r#"userName eqq "x""#);
    parse_err(r#"userName xx "x""#);
    parse_err("userName");
    parse_err("userName eq");
    parse_err("userName pr pr");
}

#[test]
fn filter_precedence_and_grouping() {
    let (a, b, c) = (pres(path("a")), pres(path("b")), pres(path("c")));
    assert_eq!(
        parse("a pr or b pr and c pr"),
        Expr::or(a.clone(), Expr::and(b.clone(), c.clone()))
    );
    assert_eq!(
        parse("a pr and b pr or c pr"),
        Expr::or(Expr::and(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        parse("(a pr or b pr) and c pr"),
        Expr::and(Expr::or(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        parse("a pr and b pr and c pr"),
        Expr::and(Expr::and(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        parse("a pr and (b pr and c pr)"),
        Expr::and(a.clone(), Expr::and(b.clone(), c.clone()))
    );
    assert_eq!(
        parse("not (a pr) and b pr"),
        Expr::and(Expr::negate(a.clone()), b.clone())
    );
    assert_eq!(parse("((a pr))"), a.clone());
    assert_eq!(parse("not(a pr)"), Expr::negate(a.clone()));
    // Canonical text keeps the grouping the tree needs, and no more.
    for (tree, text) in [
        (
            Expr::and(a.clone(), Expr::and(b.clone(), c.clone())),
            "a pr and (b pr and c pr)",
        ),
        (
            Expr::and(Expr::and(a.clone(), b.clone()), c.clone()),
            "a pr and b pr and c pr",
        ),
        (
            Expr::and(Expr::or(a.clone(), b.clone()), c.clone()),
            "(a pr or b pr) and c pr",
        ),
        (
            Expr::or(a.clone(), Expr::or(b.clone(), c.clone())),
            "a pr or (b pr or c pr)",
        ),
        (
            Expr::or(a.clone(), Expr::and(b.clone(), c.clone())),
            "a pr or b pr and c pr",
        ),
        (Expr::negate(Expr::negate(a.clone())), "not (not (a pr))"),
    ] {
        assert_eq!(tree.to_string(), text);
        assert_round_trip(&tree);
    }
    // `not` needs parentheses.
    parse_err("not a pr");
    parse_err("not");
}

#[test]
fn filter_whitespace_is_lenient() {
    assert_eq!(
        parse("  userName   eq\t\"x\"   and\n(  a   pr  )  "),
        Expr::and(
            cmp(path("userName"), CompareOp::Eq, string("x")),
            pres(path("a"))
        )
    );
    assert_eq!(
        parse(r#"emails [ type eq "work" ]"#),
        vp(
            path("emails"),
            cmp(path("type"), CompareOp::Eq, string("work"))
        )
    );
}

#[test]
fn filter_bad_syntax() {
    for bad in [
        "",
        "   ",
        "()",
        "(userName pr",
        "userName pr)",
        r#"userName eq "x" extra"#,
        r#"userName eq "x" and"#,
        r#"userName eq "x" or"#,
        r#"emails[type eq "work""#,
        r#"emails[type eq "work"]]"#,
        "emails[]",
        r#"emails[types[value pr]]"#,
        r#"name.givenName[value pr]"#,
        r#"userName eq "x" [a pr]"#,
        "userName eq x",
        "a pr ,",
        "a pr && b pr",
    ] {
        assert!(
            matches!(parse_filter(bad), Err(FilterError::Syntax { .. })),
            "{bad:?}: {:?}",
            parse_filter(bad)
        );
    }
}

#[test]
fn filter_length_limit() {
    let at_limit = format!(r#"userName eq "{}""#, "x".repeat(MAX_FILTER_LEN - 14));
    assert_eq!(at_limit.len(), MAX_FILTER_LEN);
    parse(&at_limit);
    let over = format!(r#"userName eq "{}""#, "x".repeat(MAX_FILTER_LEN - 13));
    assert_eq!(
        parse_filter(&over),
        Err(FilterError::TooLong {
            max: MAX_FILTER_LEN
        })
    );
    assert_eq!(
        parse_patch_path(&"a".repeat(MAX_FILTER_LEN + 1)),
        Err(FilterError::TooLong {
            max: MAX_FILTER_LEN
        })
    );
}

#[test]
fn filter_depth_limit() {
    let too_deep = FilterError::TooDeep {
        max: MAX_FILTER_DEPTH,
    };
    let parens = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    parse(&parens(MAX_FILTER_DEPTH));
    assert_eq!(
        parse_filter(&parens(MAX_FILTER_DEPTH + 1)),
        Err(too_deep.clone())
    );
    // Each `not` is a level of the tree, above the leaf's own level.
    let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
    assert_eq!(parse(&nots(MAX_FILTER_DEPTH - 1)).depth(), MAX_FILTER_DEPTH);
    assert_eq!(parse_filter(&nots(MAX_FILTER_DEPTH)), Err(too_deep.clone()));
    // A chain of n terms is n levels deep.
    let chain = |n: usize, op: &str| vec!["a pr"; n].join(op);
    parse(&chain(MAX_FILTER_DEPTH, " or "));
    parse(&chain(MAX_FILTER_DEPTH, " and "));
    assert_eq!(
        parse_filter(&chain(MAX_FILTER_DEPTH + 1, " or ")),
        Err(too_deep.clone())
    );
    assert_eq!(
        parse_filter(&chain(MAX_FILTER_DEPTH + 1, " and ")),
        Err(too_deep.clone())
    );
    // Brackets count too.
    let inner = nots(MAX_FILTER_DEPTH - 2);
    parse(&format!("emails[{inner}]"));
    let inner = nots(MAX_FILTER_DEPTH - 1);
    assert_eq!(
        parse_filter(&format!("emails[{inner}]")),
        Err(too_deep.clone())
    );
    assert_eq!(
        parse_patch_path(&format!("emails[{inner}].value")),
        Err(too_deep.clone())
    );
    // Far past the limit nothing overflows the stack.
    let huge = "(".repeat(MAX_FILTER_LEN);
    assert_eq!(parse_filter(&huge), Err(too_deep.clone()));
    let huge = "not (".repeat(MAX_FILTER_LEN / 5);
    assert_eq!(parse_filter(&huge), Err(too_deep.clone()));
    let huge = chain(MAX_FILTER_LEN / 8, " or ");
    assert_eq!(parse_filter(&huge), Err(too_deep));
}

#[test]
fn filter_error_messages_never_echo_input() {
    const SECRET: &str = "Sup3rS3cr3t";
    let filters = [
        format!(r#"userName eq "{SECRET}"#),
        format!(r#"userName eq "{SECRET}" {SECRET}"#),
        format!(r#"userName {SECRET} "x""#),
        format!(r#"{SECRET}.{SECRET}.{SECRET} pr"#),
        format!(r#"foo:{SECRET}:{SECRET} eq "x""#),
        format!(r#"userName eq "\u{SECRET}""#),
        format!(r#"userName eq "\{SECRET}""#),
        format!(r#"userName eq {SECRET}"#),
        format!(r#"userName eq 1{SECRET}"#),
        format!(r#"userName eq "{}""#, SECRET.repeat(500)),
        format!("{}{SECRET}", "(".repeat(40)),
        format!(r#"emails[type eq "{SECRET}"].{SECRET} eq"#),
    ];
    for s in &filters {
        let err = parse_err(s);
        assert!(!err.to_string().contains(SECRET), "{err}");
        assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
    }
    let unmappable = [
        format!(r#"{SECRET} eq "x""#),
        format!(r#"userName.{SECRET} eq "x""#),
        format!(r#"urn:{SECRET}:userName eq "x""#),
        format!(r#"meta.created gt "{SECRET}""#),
        format!(r#"active eq "{SECRET}""#),
        format!(r#"emails[{SECRET} eq "x"]"#),
        format!(r#"emails.type eq 1{}"#, "0".repeat(3)),
    ];
    for s in &unmappable {
        let err = pb_err(s);
        assert!(!err.to_string().contains(SECRET), "{err}");
        assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
    }
    for s in [
        format!("{SECRET}[x pr"),
        format!("{SECRET}.{SECRET}.{SECRET}"),
    ] {
        let Err(err) = parse_patch_path(&s) else {
            panic!("{s:?} should not parse")
        };
        assert!(!err.to_string().contains(SECRET), "{err}");
    }
}

// -------------------------------------------------------------- PATCH paths

#[test]
fn filter_patch_paths() {
    let pp = |s: &str| parse_patch_path(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    assert_eq!(
        pp("name.givenName"),
        PatchPath {
            attr: sub("name", "givenName"),
            filter: None,
            sub_attr: None
        }
    );
    assert_eq!(
        pp("active"),
        PatchPath {
            attr: path("active"),
            filter: None,
            sub_attr: None
        }
    );
    assert_eq!(
        pp("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
        PatchPath {
            attr: AttrPath {
                urn: Some("urn:ietf:params:scim:schemas:core:2.0:User".into()),
                attr: "userName".into(),
                sub_attr: None
            },
            filter: None,
            sub_attr: None
        }
    );
    assert_eq!(
        pp("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        PatchPath {
            attr: AttrPath {
                urn: Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
                attr: "manager".into(),
                sub_attr: Some("value".into())
            },
            filter: None,
            sub_attr: None
        }
    );
    let work = cmp(path("type"), CompareOp::Eq, string("work"));
    assert_eq!(
        pp(r#"emails[type eq "work"].value"#),
        PatchPath {
            attr: path("emails"),
            filter: Some(work.clone()),
            sub_attr: Some("value".into())
        }
    );
    assert_eq!(
        pp(r#" emails[type EQ "work"] "#),
        PatchPath {
            attr: path("emails"),
            filter: Some(work),
            sub_attr: None
        }
    );
    let members = pp(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#);
    assert_eq!(members.attr, path("members"));
    for s in [
        "name.givenName",
        r#"emails[type eq "work" and value co "@x"].value"#,
        r#"addresses[type eq "work" or not (primary eq true)].streetAddress"#,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    ] {
        let p = pp(s);
        assert_eq!(pp(&p.to_string()), p, "{s}");
    }
    for bad in [
        "",
        "  ",
        "1a",
        "a.b.c",
        "emails[",
        r#"emails[type eq "work""#,
        r#"emails[type eq "work"]."#,
        r#"emails[type eq "work"].value.x"#,
        r#"emails[type eq "work"] x"#,
        r#"name.givenName[value pr]"#,
        r#"emails[types[value pr]]"#,
        "emails[]",
        "userName eq",
        "a b",
        "foo:bar",
    ] {
        assert!(
            matches!(parse_patch_path(bad), Err(FilterError::Syntax { .. })),
            "{bad:?}: {:?}",
            parse_patch_path(bad)
        );
    }
}

// ------------------------------------------------------------ matches_item

#[test]
fn filter_matches_item() {
    let email = json!({"value": "Jane@Example.com", "type": "work", "primary": true});
    let yes = |s: &str, item: &serde_json::Value| assert!(matches_item(&parse(s), item), "{s}");
    let no = |s: &str, item: &serde_json::Value| assert!(!matches_item(&parse(s), item), "{s}");
    yes(r#"type eq "work""#, &email);
    yes(r#"TYPE eq "WORK""#, &email);
    no(r#"type eq "home""#, &email);
    yes(r#"type ne "home""#, &email);
    yes(r#"value co "@example.COM""#, &email);
    yes(r#"value sw "jane""#, &email);
    yes(r#"value ew ".com""#, &email);
    yes(r#"value gt "a""#, &email);
    no(r#"value lt "a""#, &email);
    yes(r#"primary eq true"#, &email);
    yes(r#"primary eq "True""#, &email);
    no(r#"primary eq false"#, &email);
    no(r#"primary gt false"#, &email);
    yes(r#"type eq "work" and value co "@example.com""#, &email);
    yes(r#"type eq "home" or primary eq true"#, &email);
    yes(r#"not (type eq "home")"#, &email);
    yes("value pr and type pr", &email);
    no("display pr", &email);
    yes("display eq null", &email);
    no("type eq null", &email);
    yes("type ne null", &email);
    no(r#"display eq "x""#, &email);
    yes(r#"display ne "x""#, &email);
    no(r#"urn:x:type eq "work""#, &email);
    // Case-exact when asked.
    assert!(!matches_item_with(
        &parse(r#"value eq "jane@example.com""#),
        &email,
        true
    ));
    assert!(matches_item_with(
        &parse(r#"value eq "Jane@Example.com""#),
        &email,
        true
    ));
    // Okta's string booleans; plain string items; Unicode case folding.
    let role = json!({"value": "admin", "primary": "True"});
    yes("primary eq true", &role);
    no("primary eq false", &role);
    yes(r#"value eq "ADMIN""#, &json!("admin"));
    no(r#"type eq "admin""#, &json!("admin"));
    yes(
        r#"value eq "élodie@example.com""#,
        &json!({"value": "ÉLODIE@example.com"}),
    );
    // Empty values are absent; numbers; date-times; nested objects; arrays.
    no("value pr", &json!({"value": ""}));
    yes("value eq null", &json!({"value": null}));
    yes("n gt 1.5", &json!({"n": 2}));
    no("n gt 1.5", &json!({"n": "2"}));
    yes("n eq 2", &json!({"n": 2.0}));
    yes(
        r#"created gt "2011-05-13T04:00:00+02:00""#,
        &json!({"created": "2011-05-13T03:00:00Z"}),
    );
    yes(r#"name.first eq "A""#, &json!({"name": {"First": "a"}}));
    yes(r#"tags eq "b""#, &json!({"tags": ["a", "b"]}));
    no(r#"tags ne "b""#, &json!({"tags": ["a", "b"]}));
    let nested = Expr::ValuePath(
        path("sub"),
        Box::new(cmp(path("k"), CompareOp::Eq, string("v"))),
    );
    assert!(matches_item(
        &nested,
        &json!({"sub": [{"k": "x"}, {"k": "V"}]})
    ));
    assert!(!matches_item(&nested, &json!({"sub": [{"k": "x"}]})));
}

// ------------------------------------------------------------------- to_pb

#[test]
fn filter_to_pb_simple_attributes() {
    use Attribute::*;
    assert_eq!(
        pb_of(r#"userName eq "jane@example.com""#),
        str_cmp(UserName, Operator::Eq, "jane@example.com")
    );
    assert_eq!(
        pb_of(r#"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:USERNAME eq "j""#),
        str_cmp(UserName, Operator::Eq, "j")
    );
    assert_eq!(pb_of(r#"id eq "1""#), str_cmp(Id, Operator::Eq, "1"));
    assert_eq!(
        pb_of(r#"externalId ne "1""#),
        str_cmp(ExternalId, Operator::Ne, "1")
    );
    assert_eq!(
        pb_of(r#"name.givenName sw "J""#),
        str_cmp(GivenName, Operator::Sw, "J")
    );
    assert_eq!(
        pb_of(r#"name.FAMILYNAME co "x""#),
        str_cmp(FamilyName, Operator::Co, "x")
    );
    assert_eq!(
        pb_of(r#"timezone ew "Paris""#),
        str_cmp(Timezone, Operator::Ew, "Paris")
    );
    for (op, pb_op) in [
        (CompareOp::Gt, Operator::Gt),
        (CompareOp::Ge, Operator::Ge),
        (CompareOp::Lt, Operator::Lt),
        (CompareOp::Le, Operator::Le),
    ] {
        assert_eq!(
            pb_of(&format!(r#"userName {op} "m""#)),
            str_cmp(UserName, pb_op, "m")
        );
    }
    assert_eq!(pb_of("userName pr"), present(UserName));
    assert_eq!(pb_of("userName eq null"), not(present(UserName)));
    assert_eq!(pb_of("userName ne null"), present(UserName));
    assert_eq!(
        pb_of(r#"not (userName eq "x")"#),
        not(str_cmp(UserName, Operator::Eq, "x"))
    );
    assert_eq!(
        pb_of("name pr"),
        or(vec![present(GivenName), present(FamilyName)])
    );
    assert_eq!(pb_of("meta pr"), constant(true));
}

#[test]
fn filter_to_pb_active_and_dates() {
    use Attribute::*;
    assert_eq!(
        pb_of("active eq true"),
        bool_cmp(Active, Operator::Eq, true)
    );
    assert_eq!(
        pb_of("active ne FALSE"),
        bool_cmp(Active, Operator::Ne, false)
    );
    assert_eq!(
        pb_of(r#"active eq "False""#),
        bool_cmp(Active, Operator::Eq, false)
    );
    assert_eq!(pb_of("active pr"), present(Active));
    assert_eq!(
        pb_of(r#"meta.created gt "2011-05-13T04:42:34Z""#),
        time_cmp(Created, Operator::Gt, 1_305_261_754, 0)
    );
    assert_eq!(
        pb_of(r#"meta.lastModified le "2011-05-13T06:42:34.5+02:00""#),
        time_cmp(LastModified, Operator::Le, 1_305_261_754, 500_000_000)
    );
    assert_eq!(pb_of("meta.created eq null"), not(present(Created)));
    for bad in [
        "active gt true",
        "active co true",
        "active eq 1",
        r#"active eq "yes""#,
        "active lt null",
        r#"meta.created gt "yesterday""#,
        r#"meta.created gt "2011-05-13""#,
        r#"meta.created co "2011""#,
        "meta.created gt true",
        "meta.lastModified gt 1305261754",
    ] {
        assert!(matches!(pb_err(bad), FilterError::Unsupported(_)), "{bad}");
    }
}

#[test]
fn filter_to_pb_multi_valued() {
    use Attribute::*;
    assert_eq!(
        pb_of(r#"emails co "@x""#),
        str_cmp(Email, Operator::Co, "@x")
    );
    assert_eq!(
        pb_of(r#"emails.value eq "a@x""#),
        str_cmp(Email, Operator::Eq, "a@x")
    );
    assert_eq!(pb_of("emails pr"), present(Email));
    assert_eq!(pb_of(r#"emails.type eq "work""#), present(Email));
    assert_eq!(pb_of(r#"emails.type eq "WORK""#), present(Email));
    assert_eq!(pb_of(r#"emails.type eq "home""#), constant(false));
    assert_eq!(pb_of(r#"emails.type ne "home""#), present(Email));
    assert_eq!(pb_of(r#"emails[type eq "home"]"#), constant(false));
    assert_eq!(pb_of(r#"emails[type eq "work"]"#), present(Email));
    assert_eq!(pb_of("emails[primary eq true]"), present(Email));
    assert_eq!(pb_of("emails.primary eq false"), constant(false));
    assert_eq!(pb_of(r#"emails[primary eq "true"]"#), present(Email));
    assert_eq!(
        pb_of(r#"emails[type eq "work" and value co "x"]"#),
        and(vec![present(Email), str_cmp(Email, Operator::Co, "x")])
    );
    assert_eq!(
        pb_of(r#"emails[type eq "work"].value eq "a@x""#),
        and(vec![present(Email), str_cmp(Email, Operator::Eq, "a@x")])
    );
    assert_eq!(pb_of(r#"emails[not (type eq "home")]"#), present(Email));
    assert_eq!(pb_of(r#"emails[not (type eq "work")]"#), constant(false));
    assert_eq!(pb_of("emails[type pr and primary pr]"), present(Email));
    assert_eq!(
        pb_of(r#"emails[type eq "work" or value eq "x"]"#),
        present(Email)
    );
    assert_eq!(
        pb_of(r#"emails[type eq "home" or value eq "x"]"#),
        and(vec![present(Email), str_cmp(Email, Operator::Eq, "x")])
    );
    assert_eq!(
        pb_of(r#"emails[value ne "x"]"#),
        and(vec![present(Email), str_cmp(Email, Operator::Ne, "x")])
    );
    assert_eq!(
        pb_of(r#"emails[not (value eq "x")]"#),
        and(vec![present(Email), not(str_cmp(Email, Operator::Eq, "x"))])
    );
    assert_eq!(
        pb_of(r#"phoneNumbers[type eq "work"].value eq "+1 555""#),
        and(vec![
            present(PhoneNumber),
            str_cmp(PhoneNumber, Operator::Eq, "+1 555")
        ])
    );
    assert_eq!(
        pb_of(r#"phonenumbers.value sw "+1""#),
        str_cmp(PhoneNumber, Operator::Sw, "+1")
    );
    assert_eq!(
        pb_of(r#"roles eq "admin""#),
        str_cmp(Role, Operator::Eq, "admin")
    );
    assert_eq!(
        pb_of(r#"roles.value eq "admin""#),
        str_cmp(Role, Operator::Eq, "admin")
    );
    assert_eq!(pb_of("roles[primary eq true]"), present(Role));
    assert_eq!(
        pb_of(r#"userName eq "x" and emails[type eq "work" and value co "@example.com"]"#),
        and(vec![
            str_cmp(UserName, Operator::Eq, "x"),
            present(Email),
            str_cmp(Email, Operator::Co, "@example.com"),
        ])
    );
    assert!(matches!(
        pb_err(r#"roles.type eq "x""#),
        FilterError::Unsupported(_)
    ));
    assert!(matches!(
        pb_err(r#"roles[type eq "x"]"#),
        FilterError::Unsupported(_)
    ));
    assert_eq!(
        pb_err(r#"emails.display eq "x""#),
        FilterError::UnknownSubAttribute
    );
    assert_eq!(
        pb_err(r#"emails[display eq "x"]"#),
        FilterError::UnknownSubAttribute
    );
    assert_eq!(
        pb_err(r#"emails[value.x eq "x"]"#),
        FilterError::UnknownSubAttribute
    );
    assert!(matches!(
        pb_err("emails.type eq 1"),
        FilterError::Unsupported(_)
    ));
    assert!(matches!(
        pb_err("emails.primary gt true"),
        FilterError::Unsupported(_)
    ));
    assert!(matches!(
        pb_err(r#"userName[value eq "x"]"#),
        FilterError::Unsupported(_)
    ));
    assert!(matches!(
        pb_err(r#"name[givenName eq "x"]"#),
        FilterError::Unsupported(_)
    ));
}

#[test]
fn filter_to_pb_flattens_and_keeps_not() {
    use Attribute::*;
    let (a, b, c) = (
        str_cmp(UserName, Operator::Eq, "a"),
        str_cmp(ExternalId, Operator::Eq, "b"),
        str_cmp(Id, Operator::Eq, "c"),
    );
    for s in [
        r#"userName eq "a" and externalId eq "b" and id eq "c""#,
        r#"userName eq "a" and (externalId eq "b" and id eq "c")"#,
    ] {
        assert_eq!(pb_of(s), and(vec![a.clone(), b.clone(), c.clone()]), "{s}");
    }
    assert_eq!(
        pb_of(r#"userName eq "a" or (externalId eq "b" or id eq "c")"#),
        or(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(
        pb_of(r#"(userName eq "a" or externalId eq "b") and id eq "c""#),
        and(vec![or(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        pb_of(r#"userName eq "a" and not (externalId eq "b" or id eq "c")"#),
        and(vec![a.clone(), not(or(vec![b.clone(), c.clone()]))])
    );
    assert_eq!(
        pb_of(r#"userName ne "a""#),
        str_cmp(UserName, Operator::Ne, "a")
    );
    assert_eq!(pb_of(r#"not (emails[type eq "home"])"#), constant(true));
    assert_eq!(
        pb_of(r#"userName eq "a" or emails.type eq "home""#),
        a.clone()
    );
    assert_eq!(pb_of(r#"userName eq "a" and userName eq "a""#), a.clone());
}

#[test]
fn filter_to_pb_refuses_unknown_attributes_and_schemas() {
    assert_eq!(pb_err("title pr"), FilterError::UnknownAttribute);
    assert_eq!(
        pb_err(r#"displayName eq "x""#),
        FilterError::UnknownAttribute
    );
    assert_eq!(
        pb_err(r#"userName.x eq "x""#),
        FilterError::UnknownSubAttribute
    );
    assert_eq!(
        pb_err(r#"name.formatted eq "x""#),
        FilterError::UnknownSubAttribute
    );
    assert_eq!(
        pb_err(r#"meta.version eq "x""#),
        FilterError::UnknownSubAttribute
    );
    assert_eq!(
        pb_err(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1""#
        ),
        FilterError::UnsupportedSchema
    );
    assert_eq!(
        pb_err(r#"urn:ietf:params:scim:schemas:core:2.0:Group:userName eq "1""#),
        FilterError::UnsupportedSchema
    );
    for bad in [
        "userName eq 5",
        "userName eq 1.5",
        "userName eq true",
        "userName gt null",
        r#"name eq "x""#,
    ] {
        assert!(matches!(pb_err(bad), FilterError::Unsupported(_)), "{bad}");
    }
    // The RFC examples map when they only use attributes the service keeps.
    for (i, s) in RFC_EXAMPLES.iter().enumerate() {
        let mapped = to_pb(&parse(s));
        assert_eq!(mapped.is_ok(), i <= 8 && i != 4, "{s}: {mapped:?}");
    }
}

#[test]
fn filter_to_pb_refuses_trees_too_deep() {
    let mut e = pres(path("userName"));
    for _ in 0..MAX_FILTER_DEPTH + 5 {
        e = Expr::negate(e);
    }
    assert_eq!(
        to_pb(&e),
        Err(FilterError::TooDeep {
            max: MAX_FILTER_DEPTH
        })
    );
    assert!(!matches_item(&e, &json!({"userName": "x"})));
}

// ---------------------------------------------------------------- proptest

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_$-]{0,8}"
}

fn arb_urn() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("urn:ietf:params:scim:schemas:core:2.0:User".to_owned()),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned()),
        "[uU][rR][nN](:[a-zA-Z0-9.$_-]{1,6}){1,4}",
    ])
}

fn arb_path() -> impl Strategy<Value = AttrPath> {
    (arb_urn(), arb_name(), prop::option::of(arb_name())).prop_map(|(urn, attr, sub_attr)| {
        AttrPath {
            urn,
            attr,
            sub_attr,
        }
    })
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::String),
        "[ -~]{0,12}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
    ]
}

fn arb_op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(CompareOp::ALL.to_vec())
}

fn arb_leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        arb_path().prop_map(Expr::Present),
        (arb_path(), arb_op(), arb_value()).prop_map(|(p, op, v)| Expr::Compare(p, op, v)),
    ]
}

fn combine(inner: impl Strategy<Value = Expr> + Clone) -> impl Strategy<Value = Expr> {
    prop_oneof![
        (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::and(a, b)),
        (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::or(a, b)),
        inner.prop_map(Expr::negate),
    ]
}

/// Filters without value paths (what brackets may hold).
fn arb_val_filter() -> impl Strategy<Value = Expr> {
    arb_leaf().prop_recursive(4, 16, 2, combine)
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let value_path = (arb_urn(), arb_name(), arb_val_filter()).prop_map(|(urn, attr, inner)| {
        Expr::ValuePath(
            AttrPath {
                urn,
                attr,
                sub_attr: None,
            },
            Box::new(inner),
        )
    });
    prop_oneof![2 => arb_leaf(), 1 => value_path].prop_recursive(4, 16, 2, combine)
}

/// Filter-like token soup: mostly invalid, sometimes valid.
fn arb_token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "userName",
        "emails",
        "name.givenName",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "type",
        "value",
        ".value",
        "eq",
        "NE",
        "co",
        "pr",
        "gt",
        "and",
        "OR",
        "not",
        "(",
        ")",
        "[",
        "]",
        "\"x\"",
        "\"\\u00e9\"",
        "\"\\ud83d\\ude00\"",
        "\"\\",
        "true",
        "null",
        "1",
        "-2.5e3",
        "1e999",
        " ",
        "",
        ".",
        ":",
    ]);
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.join(" "))
}

fn check_any_input(s: &str) {
    if let Ok(e) = parse_filter(s) {
        let text = e.to_string();
        if text.len() <= MAX_FILTER_LEN {
            assert_eq!(parse_filter(&text).as_ref(), Ok(&e), "{s:?} -> {text:?}");
        }
        let _ = to_pb(&e);
        let _ = matches_item(&e, &json!({"value": "x", "type": "work", "primary": true}));
    }
    if let Ok(p) = parse_patch_path(s) {
        let text = p.to_string();
        if text.len() <= MAX_FILTER_LEN {
            assert_eq!(
                parse_patch_path(&text).as_ref(),
                Ok(&p),
                "{s:?} -> {text:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn filter_prop_arbitrary_strings_never_panic(s in any::<String>()) {
        check_any_input(&s);
    }

    #[test]
    fn filter_prop_filter_alphabet_never_panics(s in "[a-zA-Z0-9 .:\\[\\]()\"\\\\/-]{0,64}") {
        check_any_input(&s);
    }

    #[test]
    fn filter_prop_token_soup_round_trips(s in arb_token_soup()) {
        check_any_input(&s);
    }

    #[test]
    fn filter_prop_display_round_trips(e in arb_expr()) {
        let text = e.to_string();
        prop_assume!(text.len() <= MAX_FILTER_LEN);
        prop_assert_eq!(parse_filter(&text), Ok(e));
    }

    #[test]
    fn filter_prop_patch_path_round_trips(
        attr in arb_path(),
        filter in prop::option::of(arb_val_filter()),
        sub_attr in prop::option::of(arb_name()),
    ) {
        let path = match filter {
            None => PatchPath { attr, filter: None, sub_attr: None },
            Some(f) => PatchPath {
                attr: AttrPath { sub_attr: None, ..attr },
                filter: Some(f),
                sub_attr,
            },
        };
        let text = path.to_string();
        prop_assume!(text.len() <= MAX_FILTER_LEN);
        prop_assert_eq!(parse_patch_path(&text), Ok(path));
    }
}
