//! `parse_filter` on arbitrary input: never panics, and whatever parses
//! prints to canonical text that parses back to the same tree; mapping and
//! item matching never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioning_facade::filter::{MAX_FILTER_LEN, matches_item, parse_filter, to_pb};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse_filter(input) else {
        return;
    };
    let text = expr.to_string();
    // Canonical text can be longer than the input (e.g. `1e9` prints as
    // `1000000000.0`), so only texts within the limit must re-parse.
    if text.len() <= MAX_FILTER_LEN {
        assert_eq!(
            parse_filter(&text).as_ref(),
            Ok(&expr),
            "canonical text did not round-trip: {text:?}"
        );
    }
    let _ = to_pb(&expr);
    let item = serde_json::json!({"value": "a@example.com", "type": "work", "primary": true});
    let _ = matches_item(&expr, &item);
});
