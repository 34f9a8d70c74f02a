//! What a policy change changes: every (jurisdiction, permission, signal situation) whose outcome
//! differs between two validated policies, plus the structural changes behind them (permissions,
//! groups, rules and signal mappings added, removed or changed). `gatehouse permissions diff`
//! prints it for a reviewer and exits non-zero when it is not empty, so a CI check can require a
//! sign-off on policy pull requests.
//!
//! Outcomes are computed with [`MatchedRule::resolve`] on both policies, never re-derived, so the
//! diff cannot disagree with what the server does. The signal situations are chosen so the diff is
//! complete without listing every combination of signals:
//!
//! - without a TCF record a permission is held iff its baseline is `granted` and no present opt-out
//!   revokes it, so *no signal* plus *each opt-out alone* decide every combination of opt-outs;
//! - with a TCF record, a TCF-mapped permission is held iff it is not `denied` and the record grants
//!   its purpose or special feature (opt-outs do not count), so a record *granting everything*,
//!   *granting nothing* and *only legitimate interest* decide every record, as long as the mapping
//!   itself is unchanged; a changed mapping is reported under `tcf_mapping` and
//!   `legitimate_interest`. An unmapped permission behaves as without a record.
//!
//! Jurisdictions are every rule key of either policy, plus `other countries` (no rule: the
//! `geo.default_country` rule). A region without its own rule behaves as its country's row.
//!
//! It allocates freely: a diagnostic, never on the request path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::model::{Acquisition, Group, Policy, RuleKey, TcfSource, UsOptOut};
use super::resolve::{DefaultCountry, MatchedRule};
use super::signals::{Signals, TcfSignal};

/// A signal situation the diff evaluates each jurisdiction and permission in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Situation {
    /// No consent signal at all.
    NoSignal,
    /// A TCF record consenting to every purpose and opting in to every special feature.
    TcfGrantsAll,
    /// A TCF record consenting to nothing.
    TcfGrantsNothing,
    /// A TCF record with legitimate interest established for every purpose and no consent.
    TcfLegitimateInterestOnly,
    /// `Sec-GPC: 1` only.
    Gpc,
    /// A US Privacy string opting out of sale, only.
    UsPrivacyOptOut,
    /// A GPP US section opting out of sale, only.
    GppSaleOptOut,
    /// A GPP US section opting out of sharing, only.
    GppSharingOptOut,
    /// A GPP US section opting out of targeted advertising, only.
    GppTargetedAdsOptOut,
}

impl Situation {
    /// Every situation, in report order.
    pub const ALL: [Self; 9] = [
        Self::NoSignal,
        Self::TcfGrantsAll,
        Self::TcfGrantsNothing,
        Self::TcfLegitimateInterestOnly,
        Self::Gpc,
        Self::UsPrivacyOptOut,
        Self::GppSaleOptOut,
        Self::GppSharingOptOut,
        Self::GppTargetedAdsOptOut,
    ];

    /// How reports name the situation.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::NoSignal => "no signal",
            Self::TcfGrantsAll => "tcf grants all",
            Self::TcfGrantsNothing => "tcf grants nothing",
            Self::TcfLegitimateInterestOnly => "tcf legitimate interest only",
            Self::Gpc => "gpc",
            Self::UsPrivacyOptOut => "us-privacy opt-out",
            Self::GppSaleOptOut => "gpp sale opt-out",
            Self::GppSharingOptOut => "gpp sharing opt-out",
            Self::GppTargetedAdsOptOut => "gpp targeted-ads opt-out",
        }
    }

    /// The signals of this situation.
    #[must_use]
    pub fn signals(self) -> Signals {
        let all_purposes = (1_u32 << 24) - 1;
        let tcf = |tcf: TcfSignal| Signals {
            tcf: Some(tcf),
            ..Signals::default()
        };
        match self {
            Self::NoSignal => Signals::default(),
            Self::TcfGrantsAll => tcf(TcfSignal {
                purpose_consents: all_purposes,
                purpose_li: all_purposes,
                special_feature_optins: (1 << 12) - 1,
                ..TcfSignal::default()
            }),
            Self::TcfGrantsNothing => tcf(TcfSignal::default()),
            Self::TcfLegitimateInterestOnly => tcf(TcfSignal {
                purpose_li: all_purposes,
                ..TcfSignal::default()
            }),
            Self::Gpc => Signals {
                gpc: true,
                ..Signals::default()
            },
            Self::UsPrivacyOptOut => Signals {
                us_privacy_opt_out: true,
                ..Signals::default()
            },
            Self::GppSaleOptOut => Signals {
                gpp_sale_opt_out: true,
                ..Signals::default()
            },
            Self::GppSharingOptOut => Signals {
                gpp_sharing_opt_out: true,
                ..Signals::default()
            },
            Self::GppTargetedAdsOptOut => Signals {
                gpp_targeted_ads_opt_out: true,
                ..Signals::default()
            },
        }
    }
}

impl fmt::Display for Situation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Whether a permission is held in one policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Held.
    Held,
    /// Not held.
    NotHeld,
    /// The policy does not define the permission.
    Undefined,
}

impl Outcome {
    /// How reports name the outcome.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::NotHeld => "not held",
            Self::Undefined => "undefined",
        }
    }
}

/// A value before and after.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Change<T> {
    /// In the old policy.
    pub old: T,
    /// In the new policy.
    pub new: T,
}

impl<T: PartialEq> Change<T> {
    fn of(old: T, new: T) -> Option<Self> {
        (old != new).then_some(Self { old, new })
    }
}

/// A group renamed without any other change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupRename {
    /// The old name.
    pub from: String,
    /// The new name.
    pub to: String,
}

/// One permission's acquisition in a group, before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AcquisitionChange {
    /// The permission.
    pub permission: String,
    /// `granted`, `requires-signal` or `denied`, before and after.
    #[serde(flatten)]
    pub change: Change<Acquisition>,
}

/// A group present in both policies (by name, or renamed) whose settings changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupChange {
    /// The group's new name.
    pub group: String,
    /// `gdpr-applies`, when it changed.
    pub gdpr_applies: Option<Change<bool>>,
    /// `us-privacy-applies`, when it changed.
    pub us_privacy_applies: Option<Change<bool>>,
    /// Permissions (defined in both policies) whose acquisition changed.
    pub permissions: Vec<AcquisitionChange>,
}

/// A rule as written: its key, group and overrides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleSummary {
    /// The key as written.
    pub key: String,
    /// The group.
    pub group: String,
    /// The overrides as written (`+name` / `-name`), sorted.
    pub overrides: Vec<String>,
}

/// A rule key present in both policies whose group or overrides changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    /// The key as written in the new policy.
    pub key: String,
    /// The group, when it changed (a renamed group is not a change).
    pub group: Option<Change<String>>,
    /// The overrides, when they changed.
    pub overrides: Option<Change<Vec<String>>>,
}

/// A permission whose TCF mapping changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TcfMappingChange {
    /// The permission.
    pub permission: String,
    /// The TCF field mapping it (`null`: unmapped), before and after.
    #[serde(flatten)]
    pub change: Change<Option<TcfSource>>,
}

/// A TCF purpose whose `legitimate-interest` changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegitimateInterestChange {
    /// The purpose number.
    pub purpose: u8,
    /// Whether legitimate interest counts, before and after.
    #[serde(flatten)]
    pub change: Change<bool>,
}

/// A US-style opt-out whose revocation list changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OptOutChange {
    /// The opt-out.
    pub signal: UsOptOut,
    /// Permissions it now revokes and did not.
    pub now_revokes: Vec<String>,
    /// Permissions it revoked and no longer does.
    pub no_longer_revokes: Vec<String>,
}

/// A rule and group a jurisdiction resolves to in one policy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MatchedIn {
    /// The matched rule's key as written.
    pub rule: String,
    /// Its group.
    pub group: String,
}

/// One permission in one signal situation whose outcome changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct OutcomeChange {
    /// The permission.
    pub permission: String,
    /// The signal situation.
    pub situation: Situation,
    /// Held or not, before and after.
    #[serde(flatten)]
    pub change: Change<Outcome>,
}

/// Everything that changes for one jurisdiction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JurisdictionChanges {
    /// A rule key (`US`, `US/CA`), or `other countries` for countries without a rule.
    pub jurisdiction: String,
    /// The rule and group it resolves to, before and after.
    #[serde(flatten)]
    pub matched: Change<MatchedIn>,
    /// `gdpr-applies` (OpenRTB `regs.gdpr` downstream), when it changed.
    pub gdpr_applies: Option<Change<bool>>,
    /// `us-privacy-applies`, when it changed.
    pub us_privacy_applies: Option<Change<bool>>,
    /// The permission outcomes that changed, by permission then situation.
    pub outcomes: Vec<OutcomeChange>,
}

/// The label of the jurisdiction without a rule.
pub const OTHER_COUNTRIES: &str = "other countries";

/// What changes from one policy to another. `Serialize` gives the JSON of
/// `permissions diff --json`; `Display` gives the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PolicyDiff {
    /// The old policy's source name.
    pub old: String,
    /// The new policy's source name.
    pub new: String,
    /// The `geo.default_country` both were evaluated with.
    pub default_country: String,
    /// Whether anything at all changed (the CLI exits 1 when it did).
    pub changed: bool,
    /// Permissions only the new policy defines.
    pub permissions_added: Vec<String>,
    /// Permissions only the old policy defines.
    pub permissions_removed: Vec<String>,
    /// Groups only the new policy defines (renames excluded).
    pub groups_added: Vec<String>,
    /// Groups only the old policy defines (renames excluded).
    pub groups_removed: Vec<String>,
    /// Groups whose name is the only change.
    pub groups_renamed: Vec<GroupRename>,
    /// Groups in both whose settings changed.
    pub groups_changed: Vec<GroupChange>,
    /// Rules only the new policy has.
    pub rules_added: Vec<RuleSummary>,
    /// Rules only the old policy has.
    pub rules_removed: Vec<RuleSummary>,
    /// Rules in both whose group or overrides changed.
    pub rules_changed: Vec<RuleChange>,
    /// Permissions whose TCF mapping changed.
    pub tcf_mapping: Vec<TcfMappingChange>,
    /// TCF purposes whose legitimate interest setting changed.
    pub legitimate_interest: Vec<LegitimateInterestChange>,
    /// US-style opt-outs whose revocation list changed.
    pub us_opt_outs: Vec<OptOutChange>,
    /// Outcome changes, one entry per jurisdiction with any, in rule-key order
    /// (`other countries` first).
    pub jurisdictions: Vec<JurisdictionChanges>,
}

impl PolicyDiff {
    /// The number of (jurisdiction, permission, situation) outcome changes.
    #[must_use]
    pub fn outcome_change_count(&self) -> usize {
        self.jurisdictions.iter().map(|j| j.outcomes.len()).sum()
    }
}

/// Compares two validated policies, each with the `geo.default_country` validated against it.
#[must_use]
pub fn diff_policies(
    old: &Policy,
    old_default: &DefaultCountry,
    new: &Policy,
    new_default: &DefaultCountry,
) -> PolicyDiff {
    let names = |policy: &Policy| -> Vec<String> {
        policy
            .permissions
            .iter()
            .map(|permission| permission.name.clone())
            .collect()
    };
    let (old_names, new_names) = (names(old), names(new));
    let permissions_added: Vec<String> = new_names
        .iter()
        .filter(|name| !old_names.contains(name))
        .cloned()
        .collect();
    let permissions_removed: Vec<String> = old_names
        .iter()
        .filter(|name| !new_names.contains(name))
        .cloned()
        .collect();
    let common: Vec<&String> = old_names
        .iter()
        .filter(|name| new_names.contains(name))
        .collect();

    // Groups: by name, then renames among the rest.
    let old_only: Vec<&Group> = old
        .groups
        .iter()
        .filter(|group| !new.groups.iter().any(|other| other.name == group.name))
        .collect();
    let new_only: Vec<&Group> = new
        .groups
        .iter()
        .filter(|group| !old.groups.iter().any(|other| other.name == group.name))
        .collect();
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for group in &old_only {
        let candidates: Vec<&&Group> = new_only
            .iter()
            .filter(|other| same_settings(old, group, new, other, &old_names, &new_names))
            .collect();
        if let [only] = candidates.as_slice() {
            let claimed = renamed.values().any(|to| *to == only.name);
            if !claimed {
                renamed.insert(group.name.clone(), only.name.clone());
            }
        }
    }
    let groups_renamed = renamed
        .iter()
        .map(|(from, to)| GroupRename {
            from: from.clone(),
            to: to.clone(),
        })
        .collect();
    let groups_removed = old_only
        .iter()
        .filter(|group| !renamed.contains_key(&group.name))
        .map(|group| group.name.clone())
        .collect();
    let groups_added = new_only
        .iter()
        .filter(|group| !renamed.values().any(|to| *to == group.name))
        .map(|group| group.name.clone())
        .collect();
    let renamed_to = |name: &str| {
        renamed
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    };
    let groups_changed = old
        .groups
        .iter()
        .filter_map(|before| {
            let name = renamed_to(&before.name);
            let after = new.groups.iter().find(|group| group.name == name)?;
            let permissions: Vec<AcquisitionChange> = common
                .iter()
                .filter_map(|permission| {
                    let change = Change::of(
                        acquisition(old, before, permission)?,
                        acquisition(new, after, permission)?,
                    )?;
                    Some(AcquisitionChange {
                        permission: (*permission).clone(),
                        change,
                    })
                })
                .collect();
            let change = GroupChange {
                group: name,
                gdpr_applies: Change::of(before.gdpr_applies, after.gdpr_applies),
                us_privacy_applies: Change::of(before.us_privacy_applies, after.us_privacy_applies),
                permissions,
            };
            let unchanged = change.gdpr_applies.is_none()
                && change.us_privacy_applies.is_none()
                && change.permissions.is_empty();
            (!unchanged).then_some(change)
        })
        .collect();

    // Rules, by case-insensitive key.
    let keys: BTreeSet<RuleKey> = old
        .rules
        .iter()
        .chain(&new.rules)
        .map(|rule| rule.key)
        .collect();
    let mut rules_added = Vec::new();
    let mut rules_removed = Vec::new();
    let mut rules_changed = Vec::new();
    for key in &keys {
        let before = old.find_rule(*key).map(|index| rule_summary(old, index));
        let after = new.find_rule(*key).map(|index| rule_summary(new, index));
        match (before, after) {
            (None, Some(after)) => rules_added.push(after),
            (Some(before), None) => rules_removed.push(before),
            (Some(before), Some(after)) => {
                let change = RuleChange {
                    key: after.key.clone(),
                    group: Change::of(renamed_to(&before.group), after.group.clone()).map(|_| {
                        Change {
                            old: before.group.clone(),
                            new: after.group.clone(),
                        }
                    }),
                    overrides: Change::of(before.overrides, after.overrides),
                };
                if change.group.is_some() || change.overrides.is_some() {
                    rules_changed.push(change);
                }
            }
            (None, None) => {}
        }
    }

    // Signal mappings.
    let tcf_mapping = common
        .iter()
        .filter_map(|permission| {
            let source = |policy: &Policy| {
                policy
                    .permission_id(permission)
                    .and_then(|id| policy.tcf_source(id))
            };
            Some(TcfMappingChange {
                permission: (*permission).clone(),
                change: Change::of(source(old), source(new))?,
            })
        })
        .collect();
    let legitimate_interest = (1..=24)
        .filter_map(|purpose| {
            Some(LegitimateInterestChange {
                purpose,
                change: Change::of(
                    old.tcf_legitimate_interest_allowed(purpose),
                    new.tcf_legitimate_interest_allowed(purpose),
                )?,
            })
        })
        .collect();
    let us_opt_outs = UsOptOut::ALL
        .into_iter()
        .filter_map(|signal| {
            let revoked = |policy: &Policy| -> BTreeSet<String> {
                policy
                    .names(policy.revoked_by(signal))
                    .map(str::to_owned)
                    .collect()
            };
            let (before, after) = (revoked(old), revoked(new));
            let in_vocabulary_order = |set: &BTreeSet<&String>| -> Vec<String> {
                old_names
                    .iter()
                    .chain(&permissions_added)
                    .filter(|name| set.contains(name))
                    .cloned()
                    .collect()
            };
            let now_revokes = in_vocabulary_order(&after.difference(&before).collect());
            let no_longer_revokes = in_vocabulary_order(&before.difference(&after).collect());
            (!now_revokes.is_empty() || !no_longer_revokes.is_empty()).then_some(OptOutChange {
                signal,
                now_revokes,
                no_longer_revokes,
            })
        })
        .collect();

    // Outcomes, per jurisdiction.
    let all_names: Vec<&String> = old_names.iter().chain(&permissions_added).collect();
    let mut jurisdictions = Vec::new();
    let mut geo: Vec<(String, Option<String>, Option<String>)> =
        vec![(OTHER_COUNTRIES.to_owned(), None, None)];
    for key in &keys {
        let written = new
            .find_rule(*key)
            .map(|index| new.rules[index].written.clone())
            .or_else(|| {
                old.find_rule(*key)
                    .map(|index| old.rules[index].written.clone())
            })
            .unwrap_or_default();
        let (country, region) = match written.split_once('/') {
            Some((country, region)) => (country.to_owned(), Some(region.to_owned())),
            None => (written.clone(), None),
        };
        geo.push((written, Some(country), region));
    }
    for (label, country, region) in geo {
        let before = old.match_jurisdiction(country.as_deref(), region.as_deref(), old_default);
        let after = new.match_jurisdiction(country.as_deref(), region.as_deref(), new_default);
        let outcomes = outcome_changes(&before, &after, &all_names);
        let gdpr_applies = Change::of(before.gdpr_applies(), after.gdpr_applies());
        let us_privacy_applies =
            Change::of(before.us_privacy_applies(), after.us_privacy_applies());
        if outcomes.is_empty() && gdpr_applies.is_none() && us_privacy_applies.is_none() {
            continue;
        }
        jurisdictions.push(JurisdictionChanges {
            jurisdiction: label,
            matched: Change {
                old: matched_in(&before),
                new: matched_in(&after),
            },
            gdpr_applies,
            us_privacy_applies,
            outcomes,
        });
    }

    let mut diff = PolicyDiff {
        old: old.source().to_owned(),
        new: new.source().to_owned(),
        default_country: new_default.rule_key().to_owned(),
        changed: false,
        permissions_added,
        permissions_removed,
        groups_added,
        groups_removed,
        groups_renamed,
        groups_changed,
        rules_added,
        rules_removed,
        rules_changed,
        tcf_mapping,
        legitimate_interest,
        us_opt_outs,
        jurisdictions,
    };
    diff.changed = !(diff.permissions_added.is_empty()
        && diff.permissions_removed.is_empty()
        && diff.groups_added.is_empty()
        && diff.groups_removed.is_empty()
        && diff.groups_renamed.is_empty()
        && diff.groups_changed.is_empty()
        && diff.rules_added.is_empty()
        && diff.rules_removed.is_empty()
        && diff.rules_changed.is_empty()
        && diff.tcf_mapping.is_empty()
        && diff.legitimate_interest.is_empty()
        && diff.us_opt_outs.is_empty()
        && diff.jurisdictions.is_empty());
    diff
}

fn matched_in(rule: &MatchedRule<'_>) -> MatchedIn {
    MatchedIn {
        rule: rule.rule_key().to_owned(),
        group: rule.group_name().to_owned(),
    }
}

/// The outcome changes of one jurisdiction. A permission only one policy defines is reported
/// only where the other holds it (its absence is already reported as added or removed).
fn outcome_changes(
    before: &MatchedRule<'_>,
    after: &MatchedRule<'_>,
    names: &[&String],
) -> Vec<OutcomeChange> {
    let mut changes = Vec::new();
    for situation in Situation::ALL {
        let signals = situation.signals();
        let held_before = before.resolve(&signals);
        let held_after = after.resolve(&signals);
        for name in names {
            let outcome = |rule: &MatchedRule<'_>, held: super::PermissionSet| match rule
                .policy()
                .permission_id(name)
            {
                None => Outcome::Undefined,
                Some(id) if held.contains(id) => Outcome::Held,
                Some(_) => Outcome::NotHeld,
            };
            let Some(change) = Change::of(outcome(before, held_before), outcome(after, held_after))
            else {
                continue;
            };
            let undefined_vs_not_held = matches!(
                (change.old, change.new),
                (Outcome::Undefined, Outcome::NotHeld) | (Outcome::NotHeld, Outcome::Undefined)
            );
            if !undefined_vs_not_held {
                changes.push(OutcomeChange {
                    permission: (*name).clone(),
                    situation,
                    change,
                });
            }
        }
    }
    // By permission (in vocabulary order), then situation.
    changes.sort_by_key(|change| {
        (
            names.iter().position(|name| **name == change.permission),
            change.situation,
        )
    });
    changes
}

fn acquisition(policy: &Policy, group: &Group, permission: &str) -> Option<Acquisition> {
    policy
        .permission_id(permission)
        .map(|id| group.baseline.acquisition(id))
}

/// Whether two groups differ only by name.
fn same_settings(
    old: &Policy,
    before: &Group,
    new: &Policy,
    after: &Group,
    old_names: &[String],
    new_names: &[String],
) -> bool {
    before.gdpr_applies == after.gdpr_applies
        && before.us_privacy_applies == after.us_privacy_applies
        && old_names == new_names
        && old_names
            .iter()
            .all(|name| acquisition(old, before, name) == acquisition(new, after, name))
}

fn rule_summary(policy: &Policy, index: usize) -> RuleSummary {
    let rule = &policy.rules[index];
    let mut overrides: Vec<String> = rule
        .overrides
        .iter()
        .map(|item| {
            format!(
                "{}{}",
                item.sign(),
                policy.permission_name(item.permission())
            )
        })
        .collect();
    overrides.sort();
    RuleSummary {
        key: rule.written.clone(),
        group: policy.groups[rule.group].name.clone(),
        overrides,
    }
}

fn yes_no(value: bool) -> &'static str {
    super::resolve::yes_no(value)
}

fn tcf_label(source: Option<TcfSource>) -> String {
    match source {
        None => "unmapped".to_owned(),
        Some(TcfSource::Purpose(purpose)) => format!("tcf purpose {purpose}"),
        Some(TcfSource::SpecialFeature(feature)) => format!("tcf special feature {feature}"),
    }
}

fn backticked(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rule_text(rule: &RuleSummary) -> String {
    if rule.overrides.is_empty() {
        format!("`{}`: group `{}`", rule.key, rule.group)
    } else {
        format!(
            "`{}`: group `{}` {}",
            rule.key,
            rule.group,
            rule.overrides.join(" ")
        )
    }
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "policy diff: {} -> {} (geo.default_country `{}`)",
            self.old, self.new, self.default_country
        )?;
        if !self.changed {
            return writeln!(f, "no changes");
        }
        let mut structural = Vec::new();
        if !self.permissions_added.is_empty() {
            structural.push(format!(
                "permissions added: {}",
                backticked(&self.permissions_added)
            ));
        }
        if !self.permissions_removed.is_empty() {
            structural.push(format!(
                "permissions removed: {}",
                backticked(&self.permissions_removed)
            ));
        }
        for group in &self.groups_added {
            structural.push(format!("group added: `{group}`"));
        }
        for group in &self.groups_removed {
            structural.push(format!("group removed: `{group}`"));
        }
        for rename in &self.groups_renamed {
            structural.push(format!(
                "group renamed: `{}` -> `{}` (settings unchanged)",
                rename.from, rename.to
            ));
        }
        for group in &self.groups_changed {
            let mut parts = Vec::new();
            if let Some(change) = &group.gdpr_applies {
                parts.push(format!(
                    "gdpr-applies {} -> {}",
                    yes_no(change.old),
                    yes_no(change.new)
                ));
            }
            if let Some(change) = &group.us_privacy_applies {
                parts.push(format!(
                    "us-privacy-applies {} -> {}",
                    yes_no(change.old),
                    yes_no(change.new)
                ));
            }
            for item in &group.permissions {
                parts.push(format!(
                    "`{}` {} -> {}",
                    item.permission, item.change.old, item.change.new
                ));
            }
            structural.push(format!(
                "group changed: `{}`: {}",
                group.group,
                parts.join("; ")
            ));
        }
        for rule in &self.rules_added {
            structural.push(format!("rule added: {}", rule_text(rule)));
        }
        for rule in &self.rules_removed {
            structural.push(format!("rule removed: {}", rule_text(rule)));
        }
        for rule in &self.rules_changed {
            let mut parts = Vec::new();
            if let Some(change) = &rule.group {
                parts.push(format!("group `{}` -> `{}`", change.old, change.new));
            }
            if let Some(change) = &rule.overrides {
                let list = |items: &[String]| {
                    if items.is_empty() {
                        "(none)".to_owned()
                    } else {
                        items.join(" ")
                    }
                };
                parts.push(format!(
                    "overrides {} -> {}",
                    list(&change.old),
                    list(&change.new)
                ));
            }
            structural.push(format!(
                "rule changed: `{}`: {}",
                rule.key,
                parts.join("; ")
            ));
        }
        for item in &self.tcf_mapping {
            structural.push(format!(
                "tcf mapping: `{}` {} -> {}",
                item.permission,
                tcf_label(item.change.old),
                tcf_label(item.change.new)
            ));
        }
        for item in &self.legitimate_interest {
            let accepted = |value: bool| if value { "accepted" } else { "not accepted" };
            structural.push(format!(
                "legitimate interest for tcf purpose {}: {} -> {}",
                item.purpose,
                accepted(item.change.old),
                accepted(item.change.new)
            ));
        }
        for item in &self.us_opt_outs {
            let mut parts = Vec::new();
            if !item.now_revokes.is_empty() {
                parts.push(format!("now revokes {}", backticked(&item.now_revokes)));
            }
            if !item.no_longer_revokes.is_empty() {
                parts.push(format!(
                    "no longer revokes {}",
                    backticked(&item.no_longer_revokes)
                ));
            }
            structural.push(format!(
                "us opt-out `{}`: {}",
                item.signal.yaml_key(),
                parts.join("; ")
            ));
        }
        writeln!(f)?;
        writeln!(f, "policy changes ({}):", structural.len())?;
        if structural.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for line in &structural {
            writeln!(f, "  {line}")?;
        }

        writeln!(f)?;
        let plural = |count: usize, word: &str| {
            if count == 1 {
                format!("{count} {word}")
            } else {
                format!("{count} {word}s")
            }
        };
        writeln!(
            f,
            "outcome changes ({} in {}):",
            plural(self.outcome_change_count(), "change"),
            plural(self.jurisdictions.len(), "jurisdiction"),
        )?;
        writeln!(
            f,
            "  (situations checked: {})",
            Situation::ALL.map(Situation::label).join(", ")
        )?;
        if self.jurisdictions.is_empty() {
            writeln!(
                f,
                "  (none: every jurisdiction holds the same permissions in every situation)"
            )?;
        }
        // Jurisdictions with identical changes (e.g. every country of a group) are listed together.
        let mut blocks: Vec<(Vec<&str>, Vec<String>)> = Vec::new();
        for jurisdiction in &self.jurisdictions {
            let lines = jurisdiction_lines(jurisdiction);
            match blocks.iter_mut().find(|(_, existing)| *existing == lines) {
                Some((labels, _)) => labels.push(&jurisdiction.jurisdiction),
                None => blocks.push((vec![&jurisdiction.jurisdiction], lines)),
            }
        }
        for (labels, lines) in &blocks {
            writeln!(f, "  {}", labels.join(", "))?;
            for line in lines {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// A jurisdiction's changes as report lines, without its label, so identical blocks can merge.
fn jurisdiction_lines(jurisdiction: &JurisdictionChanges) -> Vec<String> {
    let mut lines = Vec::new();
    let matched = &jurisdiction.matched;
    if matched.old.group == matched.new.group {
        lines.push(format!("group `{}`", matched.new.group));
    } else {
        lines.push(format!(
            "group `{}` -> `{}`",
            matched.old.group, matched.new.group
        ));
    }
    if let Some(change) = &jurisdiction.gdpr_applies {
        lines.push(format!(
            "gdpr applies: {} -> {}",
            yes_no(change.old),
            yes_no(change.new)
        ));
    }
    if let Some(change) = &jurisdiction.us_privacy_applies {
        lines.push(format!(
            "us privacy applies: {} -> {}",
            yes_no(change.old),
            yes_no(change.new)
        ));
    }
    // One line per (permission, transition): the situations it happens in.
    let width = jurisdiction
        .outcomes
        .iter()
        .map(|change| change.permission.len())
        .max()
        .unwrap_or(0);
    let mut grouped: Vec<(&str, Outcome, Outcome, Vec<Situation>)> = Vec::new();
    for change in &jurisdiction.outcomes {
        let key = (
            change.permission.as_str(),
            change.change.old,
            change.change.new,
        );
        match grouped
            .iter_mut()
            .find(|(permission, old, new, _)| (*permission, *old, *new) == key)
        {
            Some((.., situations)) => situations.push(change.situation),
            None => grouped.push((key.0, key.1, key.2, vec![change.situation])),
        }
    }
    for (permission, old, new, situations) in grouped {
        let when = if situations.len() == Situation::ALL.len() {
            "in every situation".to_owned()
        } else {
            situations
                .iter()
                .map(|situation| situation.label())
                .collect::<Vec<_>>()
                .join(", ")
        };
        lines.push(format!(
            "{permission:<width$}  {} -> {}: {when}",
            old.label(),
            new.label()
        ));
    }
    lines
}
