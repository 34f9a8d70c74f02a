//! Resolution: a request's jurisdiction picks one rule, and that rule plus the request's consent
//! [`Signals`] decide the [`PermissionSet`] every feature and provider reads.
//!
//! Split in two so the host can match the jurisdiction (from geo) before it decodes consent.
//! Precedence, decided here and nowhere else:
//!
//! 1. `denied` (by the group or a `-permission` override) is never held.
//! 2. A TCF record, where present, is authoritative for every permission the policy maps to a TCF
//!    purpose or special feature: held iff the record grants it (consent, legitimate interest
//!    where the policy accepts it, special-feature opt-in), for `granted` and `requires-signal`
//!    alike. US-style opt-outs do not touch these permissions while a TCF record is present.
//! 3. Otherwise `granted` is held unless a present US-style opt-out lists it in
//!    `signals.us-opt-outs`, and `requires-signal` is not held (only TCF can grant).
//!
//! This module must never allocate, parse or do I/O on the per-request path: masks are
//! precomputed at load time, so [`MatchedRule::resolve`] is a handful of bit operations.

use super::error::PolicyError;
use super::model::{
    Baseline, GeoFailureJurisdiction, Group, Override, Policy, Rule, RuleKey, parse_country,
    parse_subdivision,
};
use super::permission_set::PermissionSet;
use super::signals::Signals;

/// The jurisdiction unmatched requests fall back to (`geo.default_country`), validated against a
/// policy once at startup by [`Policy::default_country`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultCountry {
    key: RuleKey,
    rule: usize,
    written: String,
}

impl DefaultCountry {
    /// The rule key as written in the policy file (e.g. `US/CA`).
    #[must_use]
    pub fn rule_key(&self) -> &str {
        &self.written
    }
}

/// How a request's jurisdiction found its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// A `CC/SUB` rule matched the request's country and region.
    Region,
    /// A `CC` rule matched the request's country (no region rule applied).
    Country,
    /// No rule matched (or geo was unavailable): the `geo.default_country` rule applies.
    Default,
    /// The geo provider failed (trap, deadline, error): the fail-closed jurisdiction of
    /// [`Policy::match_geo_failure`] applies, never `geo.default_country`.
    GeoFailed,
}

impl MatchKind {
    /// A short label for logs and explanations.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Region => "region rule",
            Self::Country => "country rule",
            Self::Default => "geo.default_country, no rule matched",
            Self::GeoFailed => "geo failed, fail-closed jurisdiction",
        }
    }
}

/// A request-supplied geo code after normalisation, kept for explanations without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GeoInput {
    Absent,
    /// Present but not an ISO code this policy can match (e.g. `USA`, empty).
    Unrecognised,
    Code {
        bytes: [u8; 3],
        len: u8,
    },
}

impl GeoInput {
    fn code(bytes: &[u8]) -> Self {
        let mut out = [0; 3];
        let len = bytes.len().min(3);
        out[..len].copy_from_slice(&bytes[..len]);
        // Lossless: len <= 3.
        Self::Code {
            bytes: out,
            len: len as u8,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Absent | Self::Unrecognised => None,
            Self::Code { bytes, len } => bytes
                .get(..usize::from(*len))
                .and_then(|bytes| std::str::from_utf8(bytes).ok()),
        }
    }
}

/// The rule a request's jurisdiction matched. Cheap to create and copy; borrows the policy.
#[derive(Clone, Copy, Debug)]
pub struct MatchedRule<'p> {
    pub(crate) policy: &'p Policy,
    pub(crate) rule: &'p Rule,
    pub(crate) group: &'p Group,
    pub(crate) kind: MatchKind,
    pub(crate) country: GeoInput,
    pub(crate) region: GeoInput,
}

impl Policy {
    /// Validates `geo.default_country` (a rule key such as `FR` or `US/CA`, any case) against the
    /// policy's rules. Call once at startup; the result is reused by every request.
    ///
    /// # Errors
    ///
    /// [`PolicyError::MissingDefaultCountry`] when `key` is empty, and
    /// [`PolicyError::UnknownDefaultCountry`] when it is not exactly the key of a rule (a region
    /// key does not fall back to its country here: the deployer must name a rule that exists).
    pub fn default_country(&self, key: &str) -> Result<DefaultCountry, PolicyError> {
        let trimmed = key.trim();
        if trimmed.is_empty() {
            return Err(PolicyError::MissingDefaultCountry);
        }
        RuleKey::parse(trimmed)
            .and_then(|parsed| {
                let rule = self.find_rule(parsed)?;
                Some(DefaultCountry {
                    key: parsed,
                    rule,
                    written: self.rules.get(rule)?.written.clone(),
                })
            })
            .ok_or_else(|| PolicyError::UnknownDefaultCountry {
                file: self.source.clone(),
                value: key.to_owned(),
            })
    }

    /// Finds the rule for a request: the `CC/REGION` rule if any, else the `CC` rule, else
    /// `default_country`'s rule. Codes are ISO 3166-1 alpha-2 countries and ISO 3166-2
    /// subdivisions, any case, surrounding whitespace ignored; `region` may be given bare (`CA`)
    /// or with its country (`US-CA`, `US/CA`). Blank and unrecognisable codes count as absent.
    /// Allocation-free.
    ///
    /// # Panics
    ///
    /// `default_country` was validated against a different policy that has a rule this one lacks.
    #[must_use]
    pub fn match_jurisdiction(
        &self,
        country: Option<&str>,
        region: Option<&str>,
        default_country: &DefaultCountry,
    ) -> MatchedRule<'_> {
        let country_code = present(country).map(parse_country);
        let country_input = match country_code {
            None => GeoInput::Absent,
            Some(None) => GeoInput::Unrecognised,
            Some(Some(code)) => GeoInput::code(&code),
        };
        let country_code = country_code.flatten();
        let region_code = present(region).map(|region| match country_code {
            Some(country) => normalise_region(region, country),
            // Kept for explanations only: a region never matches without its country.
            None => parse_subdivision(region),
        });
        let region_input = match region_code {
            None => GeoInput::Absent,
            Some(None) => GeoInput::Unrecognised,
            Some(Some(code)) => {
                GeoInput::code(&code[..code.iter().position(|&b| b == 0).unwrap_or(3)])
            }
        };
        let region_code = region_code.flatten();

        let found = country_code.and_then(|country| {
            let country_key = RuleKey {
                country,
                subdivision: [0; 3],
            };
            region_code
                .and_then(|subdivision| {
                    self.find_rule(RuleKey {
                        country,
                        subdivision,
                    })
                })
                .map(|rule| (rule, MatchKind::Region))
                .or_else(|| {
                    self.find_rule(country_key)
                        .map(|rule| (rule, MatchKind::Country))
                })
        });
        let (rule, kind) =
            found.unwrap_or_else(|| (self.default_rule(default_country), MatchKind::Default));
        self.matched(rule, kind, country_input, region_input)
    }

    /// The jurisdiction for a request whose geo provider *failed* (trapped, missed its deadline,
    /// returned an error). A geo failure must never grant more than a successful answer could, so
    /// this is the intersection of every rule of the policy, `geo.default_country`'s included:
    ///
    /// - a permission is `granted` only if every rule grants it;
    /// - it is `requires-signal` if every rule holds it at least on a signal and some rule
    ///   requires one;
    /// - it is `denied` if any rule denies it.
    ///
    /// Because [`MatchedRule::resolve`] is monotone in the baseline, the permissions resolved here
    /// for any signals are a subset of those any rule would resolve for the same signals. With the
    /// shipped `permissions.yaml` (where `gdpr-eu` grants nothing, `US/CA` denies
    /// `scan-device-characteristics` and `US/WA` denies `use-precise-geolocation`) every permission
    /// needs a TCF signal and those two are denied. The group facts are the union of the rules'
    /// (`gdpr-applies` and `us-privacy-applies` are each true if any rule's group says so), so
    /// downstream partners treat the request as the most regulated one. A policy without rules
    /// (which cannot validate a default country anyway) denies everything.
    ///
    /// The rule key is `geo-failed` and the group `fail-closed (geo failed)`: neither can be
    /// written in `permissions.yaml`, so logs cannot confuse them with a real rule.
    /// "Geo answered, country unknown" is not a failure: that uses `geo.default_country`.
    #[must_use]
    pub fn match_geo_failure(&self) -> MatchedRule<'_> {
        MatchedRule {
            policy: self,
            rule: &self.geo_failure.rule,
            group: &self.geo_failure.group,
            kind: MatchKind::GeoFailed,
            country: GeoInput::Absent,
            region: GeoInput::Absent,
        }
    }

    /// Shorthand for [`Policy::match_jurisdiction`] then [`MatchedRule::resolve`].
    ///
    /// # Panics
    ///
    /// As [`Policy::match_jurisdiction`].
    #[must_use]
    pub fn resolve_permissions(
        &self,
        country: Option<&str>,
        region: Option<&str>,
        default_country: &DefaultCountry,
        signals: &Signals,
    ) -> PermissionSet {
        self.match_jurisdiction(country, region, default_country)
            .resolve(signals)
    }

    /// One line describing what the default jurisdiction holds without any signal, for the
    /// startup log.
    ///
    /// # Panics
    ///
    /// As [`Policy::match_jurisdiction`].
    #[must_use]
    pub fn baseline_summary(&self, default_country: &DefaultCountry) -> String {
        let matched = self.matched(
            self.default_rule(default_country),
            MatchKind::Default,
            GeoInput::Absent,
            GeoInput::Absent,
        );
        self.summary("default jurisdiction", &matched)
    }

    /// One line describing what a request holds without any signal when its geo provider
    /// failed ([`Policy::match_geo_failure`]), for the startup log beside
    /// [`Policy::baseline_summary`].
    #[must_use]
    pub fn geo_failure_summary(&self) -> String {
        self.summary("on geo failure, jurisdiction", &self.match_geo_failure())
    }

    fn summary(&self, what: &str, matched: &MatchedRule<'_>) -> String {
        let baseline = matched.baseline();
        let list = |set: PermissionSet| {
            if set.is_empty() {
                "none".to_owned()
            } else {
                self.names(set).collect::<Vec<_>>().join(", ")
            }
        };
        let overrides = if matched.overrides().is_empty() {
            String::new()
        } else {
            format!(" {}", matched.overrides_text().join(" "))
        };
        format!(
            "{what} `{}` (group `{}`{overrides}; gdpr applies: {}; us privacy applies: {}): \
             without any signal {} of {} permissions held [{}]; requires a signal [{}]; denied [{}]",
            matched.rule_key(),
            matched.group_name(),
            yes_no(matched.gdpr_applies()),
            yes_no(matched.us_privacy_applies()),
            baseline.granted().len(),
            self.permission_count(),
            list(baseline.granted()),
            list(baseline.requires_signal()),
            list(baseline.denied()),
        )
    }

    fn default_rule(&self, default_country: &DefaultCountry) -> usize {
        let same_policy = self
            .rules
            .get(default_country.rule)
            .is_some_and(|rule| rule.key == default_country.key);
        if same_policy {
            return default_country.rule;
        }
        self.find_rule(default_country.key).unwrap_or_else(|| {
            panic!(
                "default country `{}` was validated against another policy: `{}` has no such rule",
                default_country.written, self.source
            )
        })
    }

    fn matched(
        &self,
        rule: usize,
        kind: MatchKind,
        country: GeoInput,
        region: GeoInput,
    ) -> MatchedRule<'_> {
        let rule = &self.rules[rule];
        MatchedRule {
            policy: self,
            rule,
            group: &self.groups[rule.group],
            kind,
            country,
            region,
        }
    }
}

/// The rule key [`Policy::match_geo_failure`] reports.
pub const GEO_FAILURE_RULE_KEY: &str = "geo-failed";
/// The group name [`Policy::match_geo_failure`] reports.
pub const GEO_FAILURE_GROUP: &str = "fail-closed (geo failed)";

/// Builds the fail-closed jurisdiction of [`Policy::match_geo_failure`] from the validated rules.
pub(crate) fn geo_failure_jurisdiction(
    rules: &[Rule],
    groups: &[Group],
    all: PermissionSet,
) -> GeoFailureJurisdiction {
    let (granted, held_on_signal) = if rules.is_empty() {
        (PermissionSet::EMPTY, PermissionSet::EMPTY)
    } else {
        rules.iter().fold((all, all), |(granted, held), rule| {
            (
                granted.intersection(rule.baseline.granted()),
                held.intersection(
                    rule.baseline
                        .granted()
                        .union(rule.baseline.requires_signal()),
                ),
            )
        })
    };
    let used = |pick: fn(&Group) -> bool| {
        rules
            .iter()
            .filter_map(|rule| groups.get(rule.group))
            .any(pick)
    };
    let baseline = Baseline::from_sets(all, granted, held_on_signal);
    GeoFailureJurisdiction {
        rule: Rule {
            written: GEO_FAILURE_RULE_KEY.to_owned(),
            // Never in `rule_index`: no request can match this key.
            key: RuleKey {
                country: [0; 2],
                subdivision: [0; 3],
            },
            group: usize::MAX,
            overrides: Vec::new(),
            baseline,
        },
        group: Group {
            name: GEO_FAILURE_GROUP.to_owned(),
            description: Some(
                "Geo failed: only what every rule of the policy holds, so a failure never grants \
                 more than a successful answer could."
                    .to_owned(),
            ),
            gdpr_applies: used(|group| group.gdpr_applies),
            us_privacy_applies: used(|group| group.us_privacy_applies),
            baseline,
        },
    }
}

/// A geo code with surrounding whitespace removed; blank counts as absent (an empty geo header).
fn present(code: Option<&str>) -> Option<&str> {
    code.map(str::trim).filter(|code| !code.is_empty())
}

/// `CA`, `US-CA` or `US/CA` (for country `US`) → `CA`, upper-cased and zero-padded.
fn normalise_region(region: &str, country: [u8; 2]) -> Option<[u8; 3]> {
    let bare = match region.as_bytes() {
        [a, b, b'-' | b'/', ..] if [a.to_ascii_uppercase(), b.to_ascii_uppercase()] == country => {
            region.get(3..)?
        }
        _ => region,
    };
    parse_subdivision(bare)
}

pub(crate) const fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

impl<'p> MatchedRule<'p> {
    /// The policy this rule belongs to.
    #[must_use]
    pub fn policy(&self) -> &'p Policy {
        self.policy
    }

    /// The matched rule's key as written in the policy file (e.g. `US/CA`).
    #[must_use]
    pub fn rule_key(&self) -> &'p str {
        &self.rule.written
    }

    /// How the request found this rule.
    #[must_use]
    pub fn match_kind(&self) -> MatchKind {
        self.kind
    }

    /// The rule's group.
    #[must_use]
    pub fn group_name(&self) -> &'p str {
        &self.group.name
    }

    /// The group's description from the policy file, if it has one.
    #[must_use]
    pub fn group_description(&self) -> Option<&'p str> {
        self.group.description.as_deref()
    }

    /// The group's `gdpr-applies` (OpenRTB `regs.gdpr` downstream).
    #[must_use]
    pub fn gdpr_applies(&self) -> bool {
        self.group.gdpr_applies
    }

    /// The group's `us-privacy-applies`: a US-style opt-out regime applies here (a US Privacy
    /// string may be synthesised from GPC).
    #[must_use]
    pub fn us_privacy_applies(&self) -> bool {
        self.group.us_privacy_applies
    }

    /// The rule's `+permission` / `-permission` overrides, in file order.
    #[must_use]
    pub fn overrides(&self) -> &'p [Override] {
        &self.rule.overrides
    }

    /// The group's baseline with the rule's overrides applied: what holds before any signal.
    #[must_use]
    pub fn baseline(&self) -> Baseline {
        self.rule.baseline
    }

    /// The permissions this request holds given its consent signals. Allocation-free.
    #[must_use]
    pub fn resolve(&self, signals: &Signals) -> PermissionSet {
        let baseline = self.rule.baseline;
        let revoked = self.policy.opt_outs.revoked_by(signals);
        let untouched_by_tcf = baseline.granted().difference(revoked);
        match &signals.tcf {
            None => untouched_by_tcf,
            Some(tcf) => {
                let mapped = self.policy.tcf.mapped;
                let tcf_decided = baseline
                    .granted()
                    .union(baseline.requires_signal())
                    .intersection(mapped)
                    .intersection(self.policy.tcf.grants(tcf));
                tcf_decided.union(untouched_by_tcf.difference(mapped))
            }
        }
    }

    pub(crate) fn overrides_text(&self) -> Vec<String> {
        self.rule
            .overrides
            .iter()
            .map(|item| {
                format!(
                    "{}{}",
                    item.sign(),
                    self.policy.permission_name(item.permission())
                )
            })
            .collect()
    }
}
