//! Shared test support for the end-to-end (`e2e/`), browser (`browser/`), cluster (`cluster/`)
//! and compose (`compose/`) test binaries of this crate.

pub mod binary;
pub mod jwks;
pub mod private;
pub mod services;
