//! `apply_patch` on arbitrary JSON bodies: never panics, and whatever it
//! accepts it accepts again with the same result (all or nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioning_facade::patch::{Model, apply_patch};

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let start = Model {
        user_name: "jane@example.com".into(),
        email: "jane@example.com".into(),
        role: "admin".into(),
        role_type: String::new(),
        active: true,
    };
    let mut once = start.clone();
    if apply_patch(&mut once, &body).is_ok() {
        let mut again = start;
        assert!(apply_patch(&mut again, &body).is_ok());
        assert_eq!(once, again, "the same body applied differently");
    }
});
