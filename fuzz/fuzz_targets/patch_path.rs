//! `parse_patch_path` on arbitrary input: never panics, and whatever parses
//! prints to text that parses back to the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioning_facade::filter::{MAX_FILTER_LEN, parse_patch_path};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = parse_patch_path(input) else {
        return;
    };
    let text = path.to_string();
    if text.len() <= MAX_FILTER_LEN {
        assert_eq!(
            parse_patch_path(&text).as_ref(),
            Ok(&path),
            "canonical text did not round-trip: {text:?}"
        );
    }
});
