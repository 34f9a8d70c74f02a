//! The audit view: for one matched rule and one set of signals, why each permission is or is not
//! held. This is what `gatehouse permissions explain` prints for a policy owner.
//!
//! It must agree with [`MatchedRule::resolve`] bit for bit (the tests check it does), so it
//! re-derives each decision with the same precedence rather than reading another source. Unlike
//! `resolve`, it allocates freely: it is a diagnostic, never on the request path.

use std::fmt;

use serde::Serialize;

use super::gate::ProviderExplanation;
use super::model::{Acquisition, Override, TcfSource, UsOptOut};
use super::permission_set::PermissionId;
use super::resolve::{GeoInput, MatchKind, MatchedRule, yes_no};
use super::signals::{Signals, TcfSignal};

/// Why each permission is or is not held for one request. `Serialize` gives the stable
/// snake_case JSON of `--json`; `Display` gives an aligned table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The policy's source name (e.g. `permissions.yaml`).
    pub policy: String,
    /// The request's country, upper-cased; `unrecognised` when given but not an ISO 3166-1
    /// alpha-2 code; `None` when absent.
    pub country: Option<String>,
    /// The request's region (ISO 3166-2 subdivision, without country), like `country`.
    pub region: Option<String>,
    /// The matched rule's key as written in the policy.
    pub matched_rule: String,
    /// How the rule was found.
    pub matched_by: MatchKind,
    /// The rule's group.
    pub group: String,
    /// The rule's overrides as written (`+name` / `-name`).
    pub overrides: Vec<String>,
    /// The group's `gdpr-applies`.
    pub gdpr_applies: bool,
    /// The group's `us-privacy-applies`.
    pub us_privacy_applies: bool,
    /// The group's `opt-outs-override-tcf`: present US-style opt-outs revoke even what a TCF
    /// record grants.
    pub opt_outs_override_tcf: bool,
    /// The policy's `signals.tcf.publisher-tc-authoritative`.
    pub publisher_tc_authoritative: bool,
    /// The signals the request carried.
    pub signals: SignalsSeen,
    /// The held permissions, in vocabulary order.
    pub held: Vec<String>,
    /// One entry per permission, in vocabulary order.
    pub permissions: Vec<PermissionExplanation>,
    /// Whether each configured provider would be called; present only when the explanation was
    /// given the deployment's providers ([`Explanation::with_providers`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<ProviderExplanation>>,
}

impl Explanation {
    /// Adds the configured providers' gate answers (see [`MatchedRule::explain_providers`]).
    #[must_use]
    pub fn with_providers(mut self, providers: Vec<ProviderExplanation>) -> Self {
        self.providers = Some(providers);
        self
    }
}

/// The consent signals an explanation was computed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SignalsSeen {
    /// The TCF record, if any.
    pub tcf: Option<TcfSeen>,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
    /// A US Privacy string opting out of sale.
    pub us_privacy_opt_out: bool,
    /// A GPP US section opting out of sale.
    pub gpp_sale_opt_out: bool,
    /// A GPP US section opting out of sharing.
    pub gpp_sharing_opt_out: bool,
    /// A GPP US section opting out of targeted advertising.
    pub gpp_targeted_ads_opt_out: bool,
    /// GPP sections that can carry a US opt-out but did not decode: the request counts as opted
    /// out of everything they can carry (fail closed).
    pub fail_closed_gpp_sections: Vec<u16>,
}

/// A TCF record's fields as numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TcfSeen {
    /// Purposes with consent.
    pub purpose_consents: Vec<u8>,
    /// Purposes with legitimate interest established (whether or not the policy accepts it).
    pub purpose_legitimate_interests: Vec<u8>,
    /// Special features opted in.
    pub special_feature_opt_ins: Vec<u8>,
    /// The publisher TC segment's purposes with consent, when the record carries the segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher_purpose_consents: Option<Vec<u8>>,
    /// The publisher TC segment's purposes with legitimate interest, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher_purpose_legitimate_interests: Option<Vec<u8>>,
}

/// Why one permission is or is not held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PermissionExplanation {
    /// The permission's name.
    pub permission: String,
    /// Whether the request holds it.
    pub held: bool,
    /// How the rule sets it before any signal.
    pub baseline: Acquisition,
    /// Where the baseline comes from.
    pub baseline_set_by: BaselineSource,
    /// The TCF field the policy maps to this permission, if any.
    pub tcf_mapping: Option<TcfSource>,
    /// What decided the result.
    pub decided_by: Decision,
    /// US-style opt-outs present that would have revoked this permission but did not, because a
    /// TCF record decided it.
    pub opt_outs_superseded_by_tcf: Vec<UsOptOut>,
    /// `decided_by` (and any superseded opt-outs) in words.
    pub reason: String,
}

/// The rule, group and (if any) override that set a permission's baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BaselineSource {
    /// The rule key as written.
    pub rule: String,
    /// The rule's group.
    pub group: String,
    /// The override that set the baseline (`+name` / `-name`), when the group's value was replaced.
    #[serde(rename = "override")]
    pub rule_override: Option<String>,
}

/// What decided whether a permission is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// `denied` in the group: never held.
    DeniedByGroup,
    /// A `-permission` override: never held.
    DeniedByOverride,
    /// Granted by the baseline and no signal revoked it.
    Granted,
    /// The TCF record consents to the mapped purpose.
    TcfConsent {
        /// The purpose number.
        purpose: u8,
    },
    /// The TCF record establishes legitimate interest for the mapped purpose, which the policy accepts.
    TcfLegitimateInterest {
        /// The purpose number.
        purpose: u8,
    },
    /// The TCF record opts in to the mapped special feature.
    TcfSpecialFeatureOptIn {
        /// The special feature number.
        special_feature: u8,
    },
    /// The TCF record neither consents to the mapped purpose nor carries an accepted legitimate
    /// interest.
    TcfPurposeRefused {
        /// The purpose number.
        purpose: u8,
        /// Legitimate interest was set for the purpose but the policy does not accept it there.
        legitimate_interest_not_accepted: bool,
    },
    /// The TCF record does not opt in to the mapped special feature.
    TcfSpecialFeatureRefused {
        /// The special feature number.
        special_feature: u8,
    },
    /// Granted by the baseline but revoked by US-style opt-outs (no TCF record decided it).
    RevokedByOptOut {
        /// The opt-outs present whose revocation lists include the permission.
        signals: Vec<UsOptOut>,
    },
    /// A TCF record grants it, but the group says `opt-outs-override-tcf: true` and US-style
    /// opt-outs that list it are present.
    OptOutOverridesTcf {
        /// The opt-outs present whose revocation lists include the permission.
        signals: Vec<UsOptOut>,
    },
    /// `requires-signal` and the request has no TCF record.
    NoTcfRecord,
    /// `requires-signal` but the policy maps no TCF field to it, so nothing can grant it.
    NoSignalCanGrant,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeniedByGroup => f.write_str("denied by group"),
            Self::DeniedByOverride => f.write_str("denied by override"),
            Self::Granted => f.write_str("granted, no opt-out revokes it"),
            Self::TcfConsent { purpose } => write!(f, "tcf purpose {purpose} consent"),
            Self::TcfLegitimateInterest { purpose } => {
                write!(f, "tcf purpose {purpose} legitimate interest")
            }
            Self::TcfSpecialFeatureOptIn { special_feature } => {
                write!(f, "tcf special feature {special_feature} opt-in")
            }
            Self::TcfPurposeRefused {
                purpose,
                legitimate_interest_not_accepted,
            } => {
                write!(f, "tcf purpose {purpose}: no consent")?;
                if *legitimate_interest_not_accepted {
                    f.write_str(" (legitimate interest not accepted for this purpose)")?;
                }
                Ok(())
            }
            Self::TcfSpecialFeatureRefused { special_feature } => {
                write!(f, "tcf special feature {special_feature}: no opt-in")
            }
            Self::RevokedByOptOut { signals } => {
                write_labels(f, signals)?;
                f.write_str(" revoked")
            }
            Self::OptOutOverridesTcf { signals } => {
                write_labels(f, signals)?;
                f.write_str(" revoked (opt-outs override tcf in this group)")
            }
            Self::NoTcfRecord => f.write_str("no tcf record"),
            Self::NoSignalCanGrant => f.write_str("no signal can grant it (not mapped to tcf)"),
        }
    }
}

fn write_labels(f: &mut fmt::Formatter<'_>, signals: &[UsOptOut]) -> fmt::Result {
    for (position, signal) in signals.iter().enumerate() {
        if position > 0 {
            f.write_str(", ")?;
        }
        f.write_str(signal.label())?;
    }
    Ok(())
}

impl MatchedRule<'_> {
    /// Explains, permission by permission, what [`MatchedRule::resolve`] decides for `signals`.
    #[must_use]
    pub fn explain(&self, signals: &Signals) -> Explanation {
        let policy = self.policy;
        let held_set = self.resolve(signals);
        let overrides = self.overrides_text();
        let permissions = policy
            .all_permissions()
            .iter()
            .map(|id| {
                let entry = self.explain_permission(id, signals);
                debug_assert_eq!(
                    entry.held,
                    held_set.contains(id),
                    "explain disagrees with resolve for `{}`",
                    entry.permission
                );
                entry
            })
            .collect();
        Explanation {
            policy: policy.source().to_owned(),
            country: geo_text(self.country),
            region: geo_text(self.region),
            matched_rule: self.rule_key().to_owned(),
            matched_by: self.match_kind(),
            group: self.group_name().to_owned(),
            overrides,
            gdpr_applies: self.gdpr_applies(),
            us_privacy_applies: self.us_privacy_applies(),
            opt_outs_override_tcf: self.opt_outs_override_tcf(),
            publisher_tc_authoritative: policy.publisher_tc_authoritative(),
            signals: SignalsSeen::from(signals),
            held: policy.names(held_set).map(str::to_owned).collect(),
            permissions,
            providers: None,
        }
    }

    fn explain_permission(&self, id: PermissionId, signals: &Signals) -> PermissionExplanation {
        let policy = self.policy;
        let baseline = self.baseline().acquisition(id);
        let rule_override = self
            .overrides()
            .iter()
            .find(|item| item.permission() == id)
            .copied();
        let tcf_mapping = policy.tcf_source(id);
        let revokers: Vec<UsOptOut> = UsOptOut::ALL
            .into_iter()
            .filter(|signal| signal.is_present(signals) && policy.revoked_by(*signal).contains(id))
            .collect();

        let mut superseded = Vec::new();
        let (held, decided_by) = match (baseline, signals.tcf, tcf_mapping) {
            (Acquisition::Denied, _, _) => (
                false,
                if matches!(rule_override, Some(Override::Deny(_))) {
                    Decision::DeniedByOverride
                } else {
                    Decision::DeniedByGroup
                },
            ),
            (_, Some(tcf), Some(source)) => {
                let (tcf_held, decision) = self.tcf_decision(&tcf, source);
                if !revokers.is_empty() && self.opt_outs_override_tcf() {
                    if tcf_held {
                        (false, Decision::OptOutOverridesTcf { signals: revokers })
                    } else {
                        (false, decision)
                    }
                } else {
                    if baseline == Acquisition::Granted {
                        superseded.clone_from(&revokers);
                    }
                    (tcf_held, decision)
                }
            }
            (Acquisition::Granted, _, _) if revokers.is_empty() => (true, Decision::Granted),
            (Acquisition::Granted, _, _) => {
                (false, Decision::RevokedByOptOut { signals: revokers })
            }
            (Acquisition::RequiresSignal, None, Some(_)) => (false, Decision::NoTcfRecord),
            (Acquisition::RequiresSignal, _, None) => (false, Decision::NoSignalCanGrant),
        };

        let mut reason = decided_by.to_string();
        let publisher_decided = matches!(tcf_mapping, Some(TcfSource::Purpose(_)))
            && policy.publisher_tc_authoritative()
            && signals.tcf.is_some_and(|tcf| tcf.publisher.is_some())
            && matches!(
                decided_by,
                Decision::TcfConsent { .. }
                    | Decision::TcfLegitimateInterest { .. }
                    | Decision::TcfPurposeRefused { .. }
                    | Decision::OptOutOverridesTcf { .. }
            );
        if publisher_decided {
            reason.push_str(" (publisher tc segment)");
        }
        let revoked = matches!(
            decided_by,
            Decision::RevokedByOptOut { .. } | Decision::OptOutOverridesTcf { .. }
        );
        if revoked && !signals.fail_closed_gpp_sections.is_empty() {
            let ids: Vec<String> = signals
                .fail_closed_gpp_sections
                .iter()
                .map(|id| id.to_string())
                .collect();
            reason.push_str(&format!(
                " (fail closed: gpp section {} did not decode)",
                ids.join(", ")
            ));
        }
        if !superseded.is_empty() {
            let names: Vec<&str> = superseded.iter().map(|signal| signal.label()).collect();
            reason.push_str(&format!(" (tcf record wins over {})", names.join(", ")));
        }
        PermissionExplanation {
            permission: policy.permission_name(id).to_owned(),
            held,
            baseline,
            baseline_set_by: BaselineSource {
                rule: self.rule_key().to_owned(),
                group: self.group_name().to_owned(),
                rule_override: rule_override
                    .map(|item| format!("{}{}", item.sign(), policy.permission_name(id))),
            },
            tcf_mapping,
            decided_by,
            opt_outs_superseded_by_tcf: superseded,
            reason,
        }
    }

    fn tcf_decision(&self, tcf: &TcfSignal, source: TcfSource) -> (bool, Decision) {
        match source {
            TcfSource::Purpose(purpose) => {
                let bit = 1_u32 << (purpose - 1);
                let (consents, li) = self.policy.tcf.purposes(tcf);
                let li_set = li & bit != 0;
                let li_allowed = self.policy.tcf_legitimate_interest_allowed(purpose);
                if consents & bit != 0 {
                    (true, Decision::TcfConsent { purpose })
                } else if li_set && li_allowed {
                    (true, Decision::TcfLegitimateInterest { purpose })
                } else {
                    (
                        false,
                        Decision::TcfPurposeRefused {
                            purpose,
                            legitimate_interest_not_accepted: li_set,
                        },
                    )
                }
            }
            TcfSource::SpecialFeature(special_feature) => {
                if tcf.special_feature_optins & (1_u16 << (special_feature - 1)) != 0 {
                    (true, Decision::TcfSpecialFeatureOptIn { special_feature })
                } else {
                    (
                        false,
                        Decision::TcfSpecialFeatureRefused { special_feature },
                    )
                }
            }
        }
    }
}

fn geo_text(input: GeoInput) -> Option<String> {
    match input {
        GeoInput::Absent => None,
        GeoInput::Unrecognised => Some("unrecognised".to_owned()),
        GeoInput::Code { .. } => input.as_str().map(str::to_owned),
    }
}

fn bit_numbers(bits: u32, max: u8) -> Vec<u8> {
    (1..=max).filter(|n| bits & (1 << (n - 1)) != 0).collect()
}

impl From<&Signals> for SignalsSeen {
    fn from(signals: &Signals) -> Self {
        Self {
            tcf: signals.tcf.map(|tcf| TcfSeen {
                purpose_consents: bit_numbers(tcf.purpose_consents, 24),
                purpose_legitimate_interests: bit_numbers(tcf.purpose_li, 24),
                special_feature_opt_ins: bit_numbers(u32::from(tcf.special_feature_optins), 12),
                publisher_purpose_consents: tcf
                    .publisher
                    .map(|p| bit_numbers(p.purpose_consents, 24)),
                publisher_purpose_legitimate_interests: tcf
                    .publisher
                    .map(|p| bit_numbers(p.purpose_li, 24)),
            }),
            gpc: signals.gpc,
            us_privacy_opt_out: signals.us_privacy_opt_out,
            gpp_sale_opt_out: signals.gpp_sale_opt_out,
            gpp_sharing_opt_out: signals.gpp_sharing_opt_out,
            gpp_targeted_ads_opt_out: signals.gpp_targeted_ads_opt_out,
            fail_closed_gpp_sections: signals.fail_closed_gpp_sections.iter().collect(),
        }
    }
}

impl fmt::Display for SignalsSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(tcf) = &self.tcf {
            let publisher = match (
                &tcf.publisher_purpose_consents,
                &tcf.publisher_purpose_legitimate_interests,
            ) {
                (Some(consents), Some(li)) => format!(
                    "; publisher consent: {}; publisher legitimate interest: {}",
                    numbers(consents),
                    numbers(li)
                ),
                _ => String::new(),
            };
            parts.push(format!(
                "tcf (consent: {}; legitimate interest: {}; special features: {}{publisher})",
                numbers(&tcf.purpose_consents),
                numbers(&tcf.purpose_legitimate_interests),
                numbers(&tcf.special_feature_opt_ins),
            ));
        }
        let flags = [
            (self.gpc, UsOptOut::Gpc),
            (self.us_privacy_opt_out, UsOptOut::UsPrivacy),
            (self.gpp_sale_opt_out, UsOptOut::GppSale),
            (self.gpp_sharing_opt_out, UsOptOut::GppSharing),
            (self.gpp_targeted_ads_opt_out, UsOptOut::GppTargetedAds),
        ];
        parts.extend(
            flags
                .into_iter()
                .filter(|(present, _)| *present)
                .map(|(_, signal)| signal.label().to_owned()),
        );
        if !self.fail_closed_gpp_sections.is_empty() {
            let ids: Vec<String> = self
                .fail_closed_gpp_sections
                .iter()
                .map(u16::to_string)
                .collect();
            parts.push(format!(
                "fail closed: gpp section {} did not decode, counted as opted out",
                ids.join(", ")
            ));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

fn numbers(numbers: &[u8]) -> String {
    if numbers.is_empty() {
        return "none".to_owned();
    }
    numbers
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = "(none)";
        let overrides = if self.overrides.is_empty() {
            none.to_owned()
        } else {
            self.overrides.join(" ")
        };
        let held = if self.held.is_empty() {
            format!("0 of {}", self.permissions.len())
        } else {
            format!(
                "{} of {}: {}",
                self.held.len(),
                self.permissions.len(),
                self.held.join(", ")
            )
        };
        let header = [
            ("policy", self.policy.clone()),
            (
                "country",
                self.country.clone().unwrap_or_else(|| none.to_owned()),
            ),
            (
                "region",
                self.region.clone().unwrap_or_else(|| none.to_owned()),
            ),
            (
                "matched rule",
                format!("{} ({})", self.matched_rule, self.matched_by.label()),
            ),
            ("group", self.group.clone()),
            ("overrides", overrides),
            ("gdpr applies", yes_no(self.gdpr_applies).to_owned()),
            ("us privacy", yes_no(self.us_privacy_applies).to_owned()),
            (
                "opt-outs",
                if self.opt_outs_override_tcf {
                    "override tcf (opt-outs-override-tcf: true)"
                } else {
                    "tcf record wins (opt-outs-override-tcf: false)"
                }
                .to_owned(),
            ),
            (
                "publisher tc",
                if self.publisher_tc_authoritative {
                    "authoritative when present (publisher-tc-authoritative: true)"
                } else {
                    "core purposes decide (publisher-tc-authoritative: false)"
                }
                .to_owned(),
            ),
            ("signals", self.signals.to_string()),
            ("held", held),
        ];
        let label_width = header
            .iter()
            .map(|(label, _)| label.len())
            .max()
            .unwrap_or(0);
        for (label, value) in &header {
            writeln!(f, "{label:<label_width$}  {value}")?;
        }
        writeln!(f)?;

        let rows: Vec<[String; 5]> = self
            .permissions
            .iter()
            .map(|entry| {
                let set_by = match &entry.baseline_set_by.rule_override {
                    Some(item) => format!("override {item}"),
                    None => format!("group {}", entry.baseline_set_by.group),
                };
                [
                    entry.permission.clone(),
                    yes_no(entry.held).to_owned(),
                    entry.baseline.as_yaml().to_owned(),
                    set_by,
                    entry.reason.clone(),
                ]
            })
            .collect();
        let titles = ["permission", "held", "baseline", "set by", "decided by"];
        let mut widths = titles.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut line = |cells: [&str; 5]| -> fmt::Result {
            let [a, b, c, d, e] = cells;
            let [wa, wb, wc, wd, _] = widths;
            writeln!(f, "{a:<wa$}  {b:<wb$}  {c:<wc$}  {d:<wd$}  {e}")
        };
        line(titles)?;
        for row in &rows {
            let [a, b, c, d, e] = row;
            line([a, b, c, d, e])?;
        }
        if let Some(providers) = &self.providers {
            write_providers(f, providers)?;
        }
        Ok(())
    }
}

/// The `providers` section of the text explanation.
fn write_providers(f: &mut fmt::Formatter<'_>, providers: &[ProviderExplanation]) -> fmt::Result {
    writeln!(f)?;
    if providers.is_empty() {
        return writeln!(f, "configured providers: none");
    }
    writeln!(f, "configured providers:")?;
    let rows: Vec<[String; 4]> = providers
        .iter()
        .map(|entry| {
            let needs = if entry.needed.is_empty() {
                "(nothing)".to_owned()
            } else {
                entry.needed.join(", ")
            };
            [
                entry.kind.to_owned(),
                entry.provider.clone(),
                needs,
                entry.reason.clone(),
            ]
        })
        .collect();
    let titles = ["kind", "provider", "needs", "would be called"];
    let mut widths = titles.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let [wa, wb, wc, _] = widths;
    let [a, b, c, d] = titles;
    writeln!(f, "{a:<wa$}  {b:<wb$}  {c:<wc$}  {d}")?;
    for [a, b, c, d] in &rows {
        writeln!(f, "{a:<wa$}  {b:<wb$}  {c:<wc$}  {d}")?;
    }
    Ok(())
}
