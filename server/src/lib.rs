//! Provisioning core.
