//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
//!
//! Everything here is pure: text in, trees out, no I/O.
//!
//! - [`parse_filter`] parses the whole filter grammar into an [`Expr`]:
//!   `eq ne co sw ew gt ge lt le pr`, `and`/`or`/`not` (keywords and operators
//!   case-insensitive, `and` binding tighter than `or`, `not` followed by a
//!   parenthesised filter), parentheses, value paths `attr[filter]`, JSON
//!   string literals with every JSON escape, `true`/`false`/`null` (any case)
//!   and JSON numbers. Attribute names may carry a sub-attribute
//!   (`name.givenName`) and a schema URN prefix
//!   (`urn:ietf:params:scim:schemas:core:2.0:User:userName`: the URN is
//!   everything up to the last `:`). Runs of whitespace are accepted anywhere
//!   between tokens.
//! - Microsoft Entra's `emails[type eq "work"].value eq "x"` (a value path
//!   followed by `.subAttr` and a comparison) has no variant of its own: it
//!   means "some email has type work and value x", so it is parsed into
//!   `ValuePath(emails, And(<bracket filter>, value eq "x"))`, exactly what
//!   `emails[type eq "work" and value eq "x"]` parses into; `Display` prints it
//!   in that bracket form.
//! - [`Expr`]'s `Display` prints a canonical text that parses back to the same
//!   tree (for every tree within the limits below that the parser can
//!   produce).
//! - [`parse_patch_path`] parses a PATCH `path`.
//! - [`matches_item`] evaluates a value-path filter against one JSON item of
//!   a multi-valued attribute.
//! - [`to_pb`] maps a filter over Users onto the core's filter tree.
//!
//! # Limits
//! Input longer than [`MAX_FILTER_LEN`] bytes is refused before parsing.
//! Nesting is limited to [`MAX_FILTER_DEPTH`] levels, counted on the parsed
//! tree: every `and`, `or`, `not` and value path adds one level (so a flat
//! chain of `n` terms joined by `and`/`or` is `n` levels deep), and, while
//! parsing, so does every open parenthesis or bracket (redundant parentheses
//! count too). Every recursive walk over a parsed filter is therefore at most
//! [`MAX_FILTER_DEPTH`] deep.
//!
//! # Errors
//! [`FilterError`] messages never contain the submitted text or values (they
//! go back to HTTP clients and into logs): they say what is wrong and where,
//! as a 0-based character position.

mod ast;
mod eval;
mod parse;
mod pb;
#[cfg(test)]
mod tests;

pub use ast::{AttrPath, CompareOp, Expr, PatchPath, Value};
pub use eval::{matches_item, matches_item_with};
pub use parse::{parse_filter, parse_patch_path};
pub use pb::to_pb;

/// Longest filter or PATCH path accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;

/// Deepest nesting accepted (see the module documentation for how it is
/// counted).
pub const MAX_FILTER_DEPTH: usize = 32;

/// Why a filter or PATCH path was refused. The HTTP layer answers these with
/// 400 `invalidFilter` (or `invalidPath` for PATCH paths). No message ever
/// contains the submitted text or any value from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The input is longer than [`MAX_FILTER_LEN`] bytes.
    #[error("filter is too long: at most {max} bytes are accepted")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The input nests deeper than [`MAX_FILTER_DEPTH`] levels.
    #[error("filter is nested too deeply: at most {max} levels are accepted")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The input does not follow the grammar.
    #[error("{what} at position {position}")]
    Syntax {
        /// What is wrong, e.g. "unterminated string".
        what: &'static str,
        /// 0-based character offset into the input.
        position: usize,
    },
    /// The filter names an attribute the User resource does not have (or
    /// does not let filter on).
    #[error("unknown attribute in filter")]
    UnknownAttribute,
    /// The filter names a sub-attribute its attribute does not have (or does
    /// not let filter on).
    #[error("unknown sub-attribute in filter")]
    UnknownSubAttribute,
    /// The filter qualifies an attribute with a schema URN other than the
    /// core User schema.
    #[error("unsupported schema in filter")]
    UnsupportedSchema,
    /// A well-formed comparison the attribute does not support, e.g. `gt` on
    /// a boolean or a number compared with a string attribute.
    #[error("{0}")]
    Unsupported(&'static str),
}
