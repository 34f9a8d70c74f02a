//! Permission policy tests.
