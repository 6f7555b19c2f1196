//! Keys computed in Rust, never by the database: case-folded lookup keys and
//! token secrets with their hashes.
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use unicode_normalization::UnicodeNormalization as _;

/// The case-insensitive key of a user name, email or name part: the full
/// Unicode case fold of the NFC form (`ÉLODIE@example.com` and
/// `élodie@example.com` share a key). SQL `lower()`, `NOCASE` or `citext`
/// fold ASCII only or depend on the database's locale, so they are never used.
pub fn fold(value: &str) -> String {
    let nfc: String = value.nfc().collect();
    caseless::default_case_fold_str(&nfc).nfc().collect()
}

/// Prefix of every SCIM token.
pub const TOKEN_PREFIX: &str = "scim_";
/// How many leading characters of a token are kept to recognise it.
pub const DISPLAY_PREFIX_LEN: usize = 12;

/// A new SCIM token: `scim_` + base64url of 32 random bytes.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a secret: hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// The part of a token shown in listings.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(DISPLAY_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_unicode_case() {
        assert_eq!(fold("ÉLODIE@example.com"), fold("élodie@example.com"));
        assert_eq!(fold("E\u{301}lodie"), fold("élodie"));
        assert_eq!(fold("STRASSE"), fold("straße"));
        assert_ne!(fold("a@example.com"), fold("b@example.com"));
    }

    #[test]
    fn tokens_have_the_documented_shape() {
        let token = new_token();
        assert!(token.starts_with("scim_"));
        assert_eq!(token.len(), 5 + 43);
        assert_ne!(token, new_token());
        assert_eq!(hash_secret(&token).len(), 64);
        assert_eq!(display_prefix(&token).len(), 12);
    }
}
