//! Input rules shared by every write. Values are trimmed of surrounding white
//! space; control characters and over-long values are refused; messages name
//! the field, never the value.
use std::str::FromStr as _;

use crate::{
    db::entities::account,
    error::{Error, Result},
    keys,
};

pub const MAX_USER_NAME: usize = 256;
pub const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 256;
pub const MAX_PHONE: usize = 64;
pub const MAX_EXTERNAL_ID: usize = 256;

/// Trimmed text, `None` when empty.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<Option<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(field, "is too long"));
    }
    Ok(Some(value.to_owned()))
}

pub fn user_name(value: &str) -> Result<String> {
    text("userName", value, MAX_USER_NAME)?.ok_or(Error::invalid("userName", "must not be empty"))
}

pub fn email(value: &str) -> Result<Option<String>> {
    let Some(email) = text("email", value, MAX_EMAIL)? else {
        return Ok(None);
    };
    let valid = match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(Some(email))
    } else {
        Err(Error::invalid("email", "is not an email address"))
    }
}

pub fn timezone(value: &str) -> Result<Option<String>> {
    let Some(tz) = text("timezone", value, 64)? else {
        return Ok(None);
    };
    chrono_tz::Tz::from_str(&tz)
        .or_else(|_| chrono_tz::Tz::from_str_insensitive(&tz))
        .map(|tz| Some(tz.name().to_owned()))
        .map_err(|_| Error::invalid("timezone", "is not an IANA time-zone name"))
}

/// The stored role: one of the account's roles (case-insensitive), or its
/// default role when empty.
pub fn role(account: &account::Model, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(account.default_role.clone());
    }
    let key = keys::fold(value);
    account
        .role_list()
        .into_iter()
        .find(|role| *role == key)
        .ok_or(Error::invalid("role", "is not a role this account allows"))
}

/// Account slugs: `[a-z0-9][a-z0-9-]*`, at most 63 characters.
pub fn slug(value: &str) -> Result<String> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Error::invalid(
            "slug",
            "must be 1-63 lower-case letters, digits or dashes",
        ))
    }
}

/// Role names: `[a-z0-9_-]+` after case folding, at most 64 characters.
pub fn role_name(value: &str) -> Result<String> {
    let key = keys::fold(value.trim());
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(key)
    } else {
        Err(Error::invalid(
            "roles",
            "role names must be 1-64 letters, digits, dashes or underscores",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_refuses_control_characters() {
        assert_eq!(text("f", "  a  ", 10).unwrap().as_deref(), Some("a"));
        assert_eq!(text("f", "   ", 10).unwrap(), None);
        assert!(text("f", "a\u{0}b", 10).is_err());
        assert!(text("f", "abc", 2).is_err());
    }

    #[test]
    fn emails() {
        assert!(email("jane@example.com").unwrap().is_some());
        assert!(email("").unwrap().is_none());
        for bad in [
            "jane",
            "@example.com",
            "jane@",
            "ja ne@example.com",
            "jane@.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timezones_are_canonical_iana_names() {
        assert_eq!(
            timezone("europe/paris").unwrap().as_deref(),
            Some("Europe/Paris")
        );
        assert!(timezone("Mars/Olympus").is_err());
    }
}
