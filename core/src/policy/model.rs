//! The validated policy: vocabulary, groups, rules and signal mappings, with every per-request
//! mask precomputed at load time.
//!
//! Nothing here parses or resolves; [`super::parse`] builds a [`Policy`] and [`super::resolve`]
//! reads it. A `Policy` is immutable once built, so one instance is shared by every request.

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

use super::error::{PolicyError, UnknownPermission};
use super::permission_set::{PermissionId, PermissionSet};
use super::signals::Signals;

/// The policy shipped in the binary: `permissions.yaml` at the workspace root.
pub const EMBEDDED_POLICY_YAML: &str = include_str!("../../../permissions.yaml");

/// The source name the embedded policy's errors and explanations use.
pub const EMBEDDED_POLICY_SOURCE: &str = "permissions.yaml";

/// How a group (or an override) sets one permission before any signal is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Acquisition {
    /// Held unless a signal revokes it (`granted` in the file).
    Granted,
    /// Held only when a TCF record grants it (`requires-signal` in the file).
    RequiresSignal,
    /// Never held, whatever the signals say (`denied` in the file).
    Denied,
}

impl Acquisition {
    /// The spelling `permissions.yaml` uses.
    #[must_use]
    pub const fn as_yaml(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::RequiresSignal => "requires-signal",
            Self::Denied => "denied",
        }
    }

    pub(crate) fn from_yaml(value: &str) -> Option<Self> {
        match value {
            "granted" => Some(Self::Granted),
            "requires-signal" => Some(Self::RequiresSignal),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

impl fmt::Display for Acquisition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_yaml())
    }
}

/// What a rule holds before any signal: every permission is in exactly one of the three sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    granted: PermissionSet,
    requires_signal: PermissionSet,
    denied: PermissionSet,
}

impl Baseline {
    /// Permissions held without any signal (and revocable by one).
    #[must_use]
    pub const fn granted(self) -> PermissionSet {
        self.granted
    }

    /// Permissions held only when a TCF record grants them.
    #[must_use]
    pub const fn requires_signal(self) -> PermissionSet {
        self.requires_signal
    }

    /// Permissions never held.
    #[must_use]
    pub const fn denied(self) -> PermissionSet {
        self.denied
    }

    /// How this baseline sets `id`.
    #[must_use]
    pub const fn acquisition(self, id: PermissionId) -> Acquisition {
        if self.granted.contains(id) {
            Acquisition::Granted
        } else if self.requires_signal.contains(id) {
            Acquisition::RequiresSignal
        } else {
            Acquisition::Denied
        }
    }

    /// A baseline holding `granted`, requiring a signal for `requires_signal` (minus `granted`)
    /// and denying every other permission of `all`.
    pub(crate) fn from_sets(
        all: PermissionSet,
        granted: PermissionSet,
        requires_signal: PermissionSet,
    ) -> Self {
        let granted = granted.intersection(all);
        let requires_signal = requires_signal.intersection(all).difference(granted);
        Self {
            granted,
            requires_signal,
            denied: all.difference(granted).difference(requires_signal),
        }
    }

    pub(crate) fn set(&mut self, id: PermissionId, acquisition: Acquisition) {
        self.granted.remove(id);
        self.requires_signal.remove(id);
        self.denied.remove(id);
        match acquisition {
            Acquisition::Granted => self.granted.insert(id),
            Acquisition::RequiresSignal => self.requires_signal.insert(id),
            Acquisition::Denied => self.denied.insert(id),
        };
    }
}

/// A rule's `+permission` / `-permission` adjustment of its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Override {
    /// `+permission`: the rule grants it whatever the group says.
    Grant(PermissionId),
    /// `-permission`: the rule denies it whatever the group says.
    Deny(PermissionId),
}

impl Override {
    /// The permission this override sets.
    #[must_use]
    pub const fn permission(self) -> PermissionId {
        match self {
            Self::Grant(id) | Self::Deny(id) => id,
        }
    }

    /// The acquisition this override sets.
    #[must_use]
    pub const fn acquisition(self) -> Acquisition {
        match self {
            Self::Grant(_) => Acquisition::Granted,
            Self::Deny(_) => Acquisition::Denied,
        }
    }

    /// The sign `permissions.yaml` writes before the permission name.
    #[must_use]
    pub const fn sign(self) -> char {
        match self {
            Self::Grant(_) => '+',
            Self::Deny(_) => '-',
        }
    }
}

/// A US-style opt-out signal: each may revoke its own list of granted permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsOptOut {
    /// `Sec-GPC: 1` (`signals.us-opt-outs.gpc`).
    Gpc,
    /// A US Privacy string opting out of sale (`signals.us-opt-outs.us-privacy`).
    UsPrivacy,
    /// A GPP US section opting out of sale (`signals.us-opt-outs.gpp-sale`).
    GppSale,
    /// A GPP US section opting out of sharing (`signals.us-opt-outs.gpp-sharing`).
    GppSharing,
    /// A GPP US section opting out of targeted advertising
    /// (`signals.us-opt-outs.gpp-targeted-ads`).
    GppTargetedAds,
}

impl UsOptOut {
    /// Every US-style opt-out, in the order explanations list them.
    pub const ALL: [Self; 5] = [
        Self::Gpc,
        Self::UsPrivacy,
        Self::GppSale,
        Self::GppSharing,
        Self::GppTargetedAds,
    ];

    /// The key under `signals.us-opt-outs` that lists what this signal revokes.
    #[must_use]
    pub const fn yaml_key(self) -> &'static str {
        match self {
            Self::Gpc => "gpc",
            Self::UsPrivacy => "us-privacy",
            Self::GppSale => "gpp-sale",
            Self::GppSharing => "gpp-sharing",
            Self::GppTargetedAds => "gpp-targeted-ads",
        }
    }

    /// How explanations name the signal.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Gpc => "gpc",
            Self::UsPrivacy => "us-privacy opt-out",
            Self::GppSale => "gpp sale opt-out",
            Self::GppSharing => "gpp sharing opt-out",
            Self::GppTargetedAds => "gpp targeted-ads opt-out",
        }
    }

    /// Whether `signals` carries this opt-out.
    #[must_use]
    pub const fn is_present(self, signals: &Signals) -> bool {
        match self {
            Self::Gpc => signals.gpc,
            Self::UsPrivacy => signals.us_privacy_opt_out,
            Self::GppSale => signals.gpp_sale_opt_out,
            Self::GppSharing => signals.gpp_sharing_opt_out,
            Self::GppTargetedAds => signals.gpp_targeted_ads_opt_out,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for UsOptOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The TCF field that grants a permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcfSource {
    /// TCF purpose `n` (consent, or legitimate interest where the policy accepts it).
    Purpose(u8),
    /// TCF special feature `n` (opt-in).
    SpecialFeature(u8),
}

/// Highest TCF purpose number a [`super::TcfSignal`] carries.
pub(crate) const MAX_TCF_PURPOSE: u8 = 24;
/// Highest TCF special feature number a [`super::TcfSignal`] carries.
pub(crate) const MAX_TCF_SPECIAL_FEATURE: u8 = 12;

/// `signals.tcf`, as bit tables: purpose bit `n - 1` → the permission's bit.
#[derive(Clone, Debug, Default)]
pub(crate) struct TcfMapping {
    /// Permission bits granted by purpose `n` at index `n - 1` (0 when unmapped).
    pub(crate) purpose_bits: [u64; MAX_TCF_PURPOSE as usize],
    /// Purposes (bit `n - 1`) whose legitimate interest counts.
    pub(crate) li_allowed: u32,
    /// Permission bits granted by special feature `n` at index `n - 1` (0 when unmapped).
    pub(crate) special_feature_bits: [u64; MAX_TCF_SPECIAL_FEATURE as usize],
    /// Every permission some TCF field maps: a TCF record is authoritative for these.
    pub(crate) mapped: PermissionSet,
    /// The TCF field mapping each permission, by permission index.
    pub(crate) source_of: Vec<Option<TcfSource>>,
}

impl TcfMapping {
    /// The permissions a TCF record grants. Allocation-free: at most 36 bit tests.
    pub(crate) fn grants(&self, tcf: &super::TcfSignal) -> PermissionSet {
        let mut granted = 0_u64;
        let mut purposes = tcf.purpose_consents | (tcf.purpose_li & self.li_allowed);
        while purposes != 0 {
            let index = purposes.trailing_zeros() as usize;
            purposes &= purposes - 1;
            if let Some(bits) = self.purpose_bits.get(index) {
                granted |= bits;
            }
        }
        let mut features = tcf.special_feature_optins;
        while features != 0 {
            let index = features.trailing_zeros() as usize;
            features &= features - 1;
            if let Some(bits) = self.special_feature_bits.get(index) {
                granted |= bits;
            }
        }
        PermissionSet::from_bits(granted)
    }

    pub(crate) fn li_allowed_for(&self, purpose: u8) -> bool {
        (1..=MAX_TCF_PURPOSE).contains(&purpose) && self.li_allowed & (1 << (purpose - 1)) != 0
    }
}

/// `signals.us-opt-outs`: what each US-style opt-out revokes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OptOutRevocations {
    pub(crate) by_signal: [PermissionSet; UsOptOut::ALL.len()],
}

impl OptOutRevocations {
    pub(crate) fn revokes(&self, signal: UsOptOut) -> PermissionSet {
        self.by_signal[signal.index()]
    }

    /// Union of the revocation lists of the opt-outs `signals` carries.
    pub(crate) fn revoked_by(&self, signals: &Signals) -> PermissionSet {
        let mut revoked = PermissionSet::EMPTY;
        for signal in UsOptOut::ALL {
            if signal.is_present(signals) {
                revoked = revoked.union(self.revokes(signal));
            }
        }
        revoked
    }
}

/// A rule key, upper-cased: `CC` or `CC/SUB`. Fixed-size so lookups never allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RuleKey {
    pub(crate) country: [u8; 2],
    /// Up to three subdivision characters, zero-padded; all zero for a country rule.
    pub(crate) subdivision: [u8; 3],
}

impl RuleKey {
    /// Parses `CC` or `CC/SUB` (ASCII letters, subdivision 1-3 letters or digits), any case.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.split_once('/') {
            None => Some(Self {
                country: parse_country(text)?,
                subdivision: [0; 3],
            }),
            Some((country, subdivision)) => Some(Self {
                country: parse_country(country)?,
                subdivision: parse_subdivision(subdivision)?,
            }),
        }
    }
}

/// Two ASCII letters, upper-cased.
pub(crate) fn parse_country(text: &str) -> Option<[u8; 2]> {
    match text.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// One to three ASCII letters or digits, upper-cased and zero-padded.
pub(crate) fn parse_subdivision(text: &str) -> Option<[u8; 3]> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 3 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut out = [0; 3];
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = byte.to_ascii_uppercase();
    }
    Some(out)
}

#[derive(Clone, Debug)]
pub(crate) struct PermissionDef {
    pub(crate) name: String,
    pub(crate) description: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) gdpr_applies: bool,
    pub(crate) us_privacy_applies: bool,
    pub(crate) baseline: Baseline,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// The key as written in the file, for explanations and logs.
    pub(crate) written: String,
    pub(crate) key: RuleKey,
    pub(crate) group: usize,
    pub(crate) overrides: Vec<Override>,
    /// The group's baseline with the overrides applied.
    pub(crate) baseline: Baseline,
}

/// A validated permission policy. Immutable, `Send + Sync`: build once, share with every request.
///
/// Build one with [`Policy::from_yaml_str`] or use the shipped one, [`Policy::embedded`].
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) source: String,
    pub(crate) permissions: Vec<PermissionDef>,
    pub(crate) groups: Vec<Group>,
    /// In file order.
    pub(crate) rules: Vec<Rule>,
    /// `(key, index into rules)`, sorted by key for allocation-free binary search.
    pub(crate) rule_index: Vec<(RuleKey, usize)>,
    pub(crate) tcf: TcfMapping,
    pub(crate) opt_outs: OptOutRevocations,
    /// The jurisdiction a request resolves against when geo failed (see
    /// [`Policy::match_geo_failure`]): precomputed at load time, never in `rules`.
    pub(crate) geo_failure: GeoFailureJurisdiction,
}

/// The synthetic rule and group of [`Policy::match_geo_failure`].
#[derive(Clone, Debug)]
pub(crate) struct GeoFailureJurisdiction {
    pub(crate) rule: Rule,
    pub(crate) group: Group,
}

impl Policy {
    /// The policy shipped in the binary (`permissions.yaml` at the workspace root), parsed on the
    /// first call and cached for the life of the process.
    ///
    /// # Errors
    ///
    /// The embedded file is invalid. The test suite parses it, so this only happens to a build
    /// whose `permissions.yaml` was edited without running the tests; the host must refuse to start.
    pub fn embedded() -> Result<&'static Self, PolicyError> {
        static EMBEDDED: OnceLock<Result<Policy, PolicyError>> = OnceLock::new();
        EMBEDDED
            .get_or_init(|| Self::from_yaml_str(EMBEDDED_POLICY_YAML, EMBEDDED_POLICY_SOURCE))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The source name given at parse time (used in errors and explanations).
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How many permissions the vocabulary defines.
    #[must_use]
    pub fn permission_count(&self) -> usize {
        self.permissions.len()
    }

    /// Every permission of the vocabulary.
    #[must_use]
    pub fn all_permissions(&self) -> PermissionSet {
        PermissionSet::first(self.permissions.len())
    }

    /// The id of the permission called `name` (exact, case-sensitive), if the vocabulary has it.
    #[must_use]
    pub fn permission_id(&self, name: &str) -> Option<PermissionId> {
        self.permissions
            .iter()
            .position(|permission| permission.name == name)
            .and_then(PermissionId::new)
    }

    /// The name of `id`.
    ///
    /// # Panics
    ///
    /// `id` does not belong to this policy's vocabulary (an id from another policy).
    #[must_use]
    pub fn permission_name(&self, id: PermissionId) -> &str {
        &self.permission_def(id).name
    }

    /// The one-line description of `id` from `permissions.yaml`.
    ///
    /// # Panics
    ///
    /// `id` does not belong to this policy's vocabulary (an id from another policy).
    #[must_use]
    pub fn permission_description(&self, id: PermissionId) -> &str {
        &self.permission_def(id).description
    }

    fn permission_def(&self, id: PermissionId) -> &PermissionDef {
        self.permissions.get(id.index()).unwrap_or_else(|| {
            panic!(
                "permission index {} is not in the vocabulary of `{}` ({} permissions)",
                id.index(),
                self.source,
                self.permissions.len()
            )
        })
    }

    /// The vocabulary in file order: `(id, name, description)`.
    pub fn permissions(&self) -> impl ExactSizeIterator<Item = (PermissionId, &str, &str)> + '_ {
        self.all_permissions().iter().map(|id| {
            let permission = self.permission_def(id);
            (
                id,
                permission.name.as_str(),
                permission.description.as_str(),
            )
        })
    }

    /// The names of `set`'s members, in vocabulary order.
    pub fn names(&self, set: PermissionSet) -> impl Iterator<Item = &str> + '_ {
        set.intersection(self.all_permissions())
            .iter()
            .map(|id| self.permission_name(id))
    }

    /// The set named by `names`, e.g. a provider manifest's required permissions. Names are exact
    /// and case-sensitive; duplicates are harmless.
    ///
    /// # Errors
    ///
    /// A name is not in the vocabulary. The host refuses to load the provider: a permission the
    /// policy does not know can never be checked, so it must not be silently ignored.
    pub fn set_from_names<S: AsRef<str>>(
        &self,
        names: &[S],
    ) -> Result<PermissionSet, UnknownPermission> {
        names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                self.permission_id(name).ok_or_else(|| UnknownPermission {
                    name: name.to_owned(),
                })
            })
            .collect()
    }

    /// Group names in file order.
    pub fn group_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.groups.iter().map(|group| group.name.as_str())
    }

    /// Rule keys as written, in file order.
    pub fn rule_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.rules.iter().map(|rule| rule.written.as_str())
    }

    /// The TCF field that maps `id`, if any (a TCF record is authoritative for mapped permissions).
    #[must_use]
    pub fn tcf_source(&self, id: PermissionId) -> Option<TcfSource> {
        self.tcf.source_of.get(id.index()).copied().flatten()
    }

    /// Whether legitimate interest counts as a grant for TCF purpose `purpose`.
    #[must_use]
    pub fn tcf_legitimate_interest_allowed(&self, purpose: u8) -> bool {
        self.tcf.li_allowed_for(purpose)
    }

    /// What `signal` revokes where a rule grants it and no TCF record decides instead.
    #[must_use]
    pub fn revoked_by(&self, signal: UsOptOut) -> PermissionSet {
        self.opt_outs.revokes(signal)
    }

    pub(crate) fn find_rule(&self, key: RuleKey) -> Option<usize> {
        self.rule_index
            .binary_search_by(|(candidate, _)| candidate.cmp(&key))
            .ok()
            .and_then(|position| self.rule_index.get(position))
            .map(|&(_, rule)| rule)
    }
}
