//! Permission policy tests: the shipped `permissions.yaml`, resolution, validation and the
//! `explain` audit view.

mod diff;
mod explain;
mod gate;
mod permission_set;
mod resolve;
mod validation;

use gatehouse_core::policy::{
    DefaultCountry, PermissionId, PermissionSet, Policy, Signals, TcfSignal,
};

/// The shipped policy.
fn embedded() -> &'static Policy {
    Policy::embedded().expect("the shipped permissions.yaml is valid")
}

/// The default country a deployment would configure.
fn default_country(policy: &Policy, key: &str) -> DefaultCountry {
    policy
        .default_country(key)
        .expect("default country names a rule of the policy")
}

fn id(policy: &Policy, name: &str) -> PermissionId {
    policy
        .permission_id(name)
        .unwrap_or_else(|| panic!("`{name}` is in the vocabulary"))
}

fn set(policy: &Policy, names: &[&str]) -> PermissionSet {
    policy
        .set_from_names(names)
        .expect("test names are in the vocabulary")
}

fn names(policy: &Policy, set: PermissionSet) -> Vec<&str> {
    policy.names(set).collect()
}

fn bits32(numbers: &[u8]) -> u32 {
    numbers.iter().fold(0, |bits, n| bits | 1 << (n - 1))
}

/// A TCF record with consent to `consents`, legitimate interest for `li` and opt-in to the
/// special features `features`.
fn tcf(consents: &[u8], li: &[u8], features: &[u8]) -> Signals {
    Signals {
        tcf: Some(TcfSignal {
            purpose_consents: bits32(consents),
            purpose_li: bits32(li),
            special_feature_optins: u16::try_from(bits32(features)).expect("features fit 16 bits"),
            publisher: None,
        }),
        ..Signals::default()
    }
}

fn gpc() -> Signals {
    Signals {
        gpc: true,
        ..Signals::default()
    }
}

/// A small valid policy that the validation and override tests mutate.
const MINIMAL: &str = r"
permissions:
  a: permission a
  b: permission b
  c: permission c
groups:
  strict:
    gdpr-applies: true
    us-privacy-applies: false
    permissions:
      a: requires-signal
      b: requires-signal
      c: denied
  open:
    description: everything until an opt-out
    gdpr-applies: false
    us-privacy-applies: true
    permissions:
      a: granted
      b: granted
      c: granted
rules:
  FR: strict
  US: open
  US/CA: { group: open, overrides: [-c] }
signals:
  tcf:
    purposes:
      1: { permission: a }
      2: { permission: b }
    special-features: {}
  us-opt-outs:
    gpc: [a]
    us-privacy: []
    gpp-sale: []
    gpp-sharing: []
    gpp-targeted-ads: []
";

fn minimal() -> Policy {
    Policy::from_yaml_str(MINIMAL, "minimal.yaml").expect("the minimal policy is valid")
}
