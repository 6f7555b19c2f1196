//! SCIM 2.0 facade.
