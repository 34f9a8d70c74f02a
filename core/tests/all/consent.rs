//! Consent decoding and pipeline tests.
