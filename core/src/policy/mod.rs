//! The permission policy: `permissions.yaml` parsed and validated, and requests resolved against it.
//!
//! Permissions are the one currency features and providers read; none of them reads consent
//! directly. This module decides, for a request's jurisdiction (country and region from geo) and
//! its decoded consent [`Signals`], which permissions of the policy's vocabulary are held:
//!
//! - [`Policy`] is the validated `permissions.yaml` ([`Policy::embedded`] or
//!   [`Policy::from_yaml_str`]): the vocabulary, groups that set every permission to `granted`,
//!   `requires-signal` or `denied`, rules from ISO 3166 codes to groups with `+`/`-` overrides,
//!   and the mapping from TCF purposes and US-style opt-outs to permissions.
//! - [`Policy::match_jurisdiction`] picks a [`MatchedRule`]; [`MatchedRule::resolve`] turns
//!   signals into a [`PermissionSet`]; [`MatchedRule::explain`] says why, for auditors.
//!
//! It must never do I/O, read raw consent strings, or turn lenient: anything the policy does not
//! name (a permission, group, key) is an error at load time, never ignored at request time.

mod error;
mod explain;
mod model;
mod parse;
mod permission_set;
mod resolve;
mod signals;

pub use error::{DEFAULT_COUNTRY_KEY, InvalidPolicy, PolicyError, UnknownPermission};
pub use explain::{
    BaselineSource, Decision, Explanation, PermissionExplanation, SignalsSeen, TcfSeen,
};
pub use model::{
    Acquisition, Baseline, EMBEDDED_POLICY_SOURCE, EMBEDDED_POLICY_YAML, Override, Policy,
    TcfSource, UsOptOut,
};
pub use permission_set::{MAX_PERMISSIONS, PermissionId, PermissionSet, PermissionSetIter};
pub use resolve::{
    DefaultCountry, GEO_FAILURE_GROUP, GEO_FAILURE_RULE_KEY, MatchKind, MatchedRule,
};
pub use signals::{Signals, TcfSignal};
