//! `permissions.yaml` → [`Policy`]: parse to a YAML value tree, then validate by hand so every
//! error carries the file, the key path and the reason.
//!
//! Serde's derive with `deny_unknown_fields` would reject the same documents, but its messages
//! give a line and column instead of a key path, and a policy owner fixes a policy by key. This
//! module must never accept a document it does not fully understand: unknown keys, names and
//! values are errors, and nothing defaults silently except what the file format documents
//! (`legitimate-interest` per TCF purpose, a rule's `overrides`, a group's `description`).

use serde_yaml_ng::{Mapping, Value};

use super::error::{InvalidPolicy, PolicyError};
use super::model::{
    Acquisition, Baseline, Group, MAX_TCF_PURPOSE, MAX_TCF_SPECIAL_FEATURE, OptOutRevocations,
    Override, PermissionDef, Policy, Rule, RuleKey, TcfMapping, TcfSource, UsOptOut,
};
use super::permission_set::{MAX_PERMISSIONS, PermissionId, PermissionSet};

/// TCF purposes whose legitimate interest counts when `legitimate-interest` is omitted.
const TCF_LI_DEFAULT_PURPOSES: [u8; 6] = [2, 7, 8, 9, 10, 11];
/// TCF purposes for which the TCF policy forbids legitimate interest as a legal basis.
const TCF_LI_FORBIDDEN_PURPOSES: [u8; 5] = [1, 3, 4, 5, 6];

impl Policy {
    /// Parses and validates a policy. `source` names the file in every error (e.g.
    /// `permissions.yaml` or the path the host loaded it from).
    ///
    /// # Errors
    ///
    /// [`PolicyError::Syntax`] when `text` is not YAML (duplicate keys included), otherwise
    /// [`PolicyError::Invalid`] with the key path of the first problem: an unknown key, group,
    /// permission or acquisition; a malformed or duplicate override; a malformed rule key or one
    /// that duplicates another once case is ignored; a group that does not set every permission;
    /// more than 64 permissions; or an invalid TCF or opt-out mapping.
    pub fn from_yaml_str(text: &str, source: &str) -> std::result::Result<Self, PolicyError> {
        let document: Value =
            serde_yaml_ng::from_str(text).map_err(|error| PolicyError::Syntax {
                file: source.to_owned(),
                message: error.to_string(),
            })?;
        Parser { file: source }.policy(&document)
    }
}

struct Parser<'a> {
    file: &'a str,
}

type Result<T> = std::result::Result<T, PolicyError>;

/// `(key, index into rules)`, sorted by key.
type RuleIndex = Vec<(RuleKey, usize)>;

impl Parser<'_> {
    fn err(&self, path: &str, reason: InvalidPolicy) -> PolicyError {
        PolicyError::Invalid {
            file: self.file.to_owned(),
            path: path.to_owned(),
            reason,
        }
    }

    fn policy(&self, document: &Value) -> Result<Policy> {
        let root = self.mapping(document, "(root)")?;
        self.check_keys(root, "", &["permissions", "groups", "rules", "signals"])?;
        let permissions = self.permissions(self.required(root, "", "permissions")?)?;
        let vocabulary = Vocabulary(&permissions);
        let groups = self.groups(self.required(root, "", "groups")?, &vocabulary)?;
        let (rules, rule_index) =
            self.rules(self.required(root, "", "rules")?, &groups, &vocabulary)?;
        let signals = self.mapping(self.required(root, "", "signals")?, "signals")?;
        self.check_keys(signals, "signals", &["tcf", "us-opt-outs"])?;
        let tcf = self.tcf(self.required(signals, "signals", "tcf")?, &vocabulary)?;
        let opt_outs = self.opt_outs(
            self.required(signals, "signals", "us-opt-outs")?,
            &vocabulary,
        )?;
        let geo_failure =
            super::resolve::geo_failure_jurisdiction(&rules, &groups, vocabulary.all());
        Ok(Policy {
            source: self.file.to_owned(),
            permissions,
            groups,
            rules,
            rule_index,
            tcf,
            opt_outs,
            geo_failure,
        })
    }

    /// `permissions:` name → one-line description.
    fn permissions(&self, value: &Value) -> Result<Vec<PermissionDef>> {
        let map = self.mapping(value, "permissions")?;
        if map.is_empty() {
            return Err(self.err("permissions", InvalidPolicy::NoPermissions));
        }
        if map.len() > MAX_PERMISSIONS {
            return Err(self.err(
                "permissions",
                InvalidPolicy::TooManyPermissions {
                    count: map.len(),
                    max: MAX_PERMISSIONS,
                },
            ));
        }
        map.iter()
            .map(|(key, description)| {
                let name = self.name(key, "permissions")?;
                let path = join("permissions", name);
                let description = self.str(description, &path, "a one-line description")?;
                let description = description.trim();
                let problem = if description.is_empty() {
                    Some("an empty string")
                } else if description.contains('\n') {
                    Some("several lines")
                } else {
                    None
                };
                if let Some(found) = problem {
                    return Err(self.err(
                        &path,
                        InvalidPolicy::WrongType {
                            expected: "a one-line description",
                            found: found.to_owned(),
                        },
                    ));
                }
                Ok(PermissionDef {
                    name: name.to_owned(),
                    description: description.to_owned(),
                })
            })
            .collect()
    }

    /// `groups:` name → `{ description?, gdpr-applies, us-privacy-applies, permissions }`.
    fn groups(&self, value: &Value, vocabulary: &Vocabulary<'_>) -> Result<Vec<Group>> {
        let map = self.mapping(value, "groups")?;
        map.iter()
            .map(|(key, body)| {
                let name = self.name(key, "groups")?;
                let path = join("groups", name);
                let body = self.mapping(body, &path)?;
                self.check_keys(
                    body,
                    &path,
                    &[
                        "description",
                        "gdpr-applies",
                        "us-privacy-applies",
                        "permissions",
                    ],
                )?;
                let description = body
                    .get("description")
                    .map(|value| self.str(value, &join(&path, "description"), "a string"))
                    .transpose()?
                    .map(|text| text.trim().to_owned());
                let gdpr_applies = self.bool(body, &path, "gdpr-applies")?;
                let us_privacy_applies = self.bool(body, &path, "us-privacy-applies")?;
                let baseline = self.group_permissions(
                    self.required(body, &path, "permissions")?,
                    &path,
                    vocabulary,
                )?;
                Ok(Group {
                    name: name.to_owned(),
                    description,
                    gdpr_applies,
                    us_privacy_applies,
                    baseline,
                })
            })
            .collect()
    }

    fn group_permissions(
        &self,
        value: &Value,
        group_path: &str,
        vocabulary: &Vocabulary<'_>,
    ) -> Result<Baseline> {
        let path = join(group_path, "permissions");
        let map = self.mapping(value, &path)?;
        let mut baseline = Baseline::default();
        let mut seen = PermissionSet::EMPTY;
        for (key, acquisition) in map {
            let name = self.key_str(key, &path)?;
            let entry_path = join(&path, name);
            let id = vocabulary.id(name).ok_or_else(|| {
                self.err(
                    &entry_path,
                    InvalidPolicy::UnknownPermission {
                        permission: name.to_owned(),
                    },
                )
            })?;
            let acquisition = acquisition
                .as_str()
                .and_then(Acquisition::from_yaml)
                .ok_or_else(|| {
                    self.err(
                        &entry_path,
                        InvalidPolicy::UnknownAcquisition {
                            value: scalar_text(acquisition),
                        },
                    )
                })?;
            seen.insert(id);
            baseline.set(id, acquisition);
        }
        if let Some(missing) = vocabulary.all().difference(seen).iter().next() {
            let permission = vocabulary.name(missing).to_owned();
            return Err(self.err(
                &join(&path, &permission),
                InvalidPolicy::MissingPermission { permission },
            ));
        }
        Ok(baseline)
    }

    /// `rules:` `CC` or `CC/SUB` → `group` or `{ group, overrides? }`.
    fn rules(
        &self,
        value: &Value,
        groups: &[Group],
        vocabulary: &Vocabulary<'_>,
    ) -> Result<(Vec<Rule>, RuleIndex)> {
        let map = self.mapping(value, "rules")?;
        let mut rules: Vec<Rule> = Vec::with_capacity(map.len());
        let mut index: RuleIndex = Vec::with_capacity(map.len());
        for (key, body) in map {
            let written = self.key_str(key, "rules")?;
            let path = join("rules", written);
            let key = RuleKey::parse(written).ok_or_else(|| {
                self.err(
                    &path,
                    InvalidPolicy::MalformedRuleKey {
                        key: written.to_owned(),
                    },
                )
            })?;
            if let Some(&(_, first)) = index.iter().find(|(existing, _)| *existing == key) {
                let first = rules
                    .get(first)
                    .map(|rule| rule.written.clone())
                    .unwrap_or_default();
                return Err(self.err(
                    &path,
                    InvalidPolicy::DuplicateRuleKey {
                        key: written.to_owned(),
                        first,
                    },
                ));
            }
            let (group, overrides) = self.rule_body(body, &path, groups, vocabulary)?;
            let mut baseline = groups
                .get(group)
                .map(|group| group.baseline)
                .unwrap_or_default();
            for &item in &overrides {
                baseline.set(item.permission(), item.acquisition());
            }
            index.push((key, rules.len()));
            rules.push(Rule {
                written: written.to_owned(),
                key,
                group,
                overrides,
                baseline,
            });
        }
        index.sort_unstable();
        Ok((rules, index))
    }

    fn rule_body(
        &self,
        body: &Value,
        path: &str,
        groups: &[Group],
        vocabulary: &Vocabulary<'_>,
    ) -> Result<(usize, Vec<Override>)> {
        match body {
            Value::String(group) => Ok((self.group_ref(group, path, groups)?, Vec::new())),
            Value::Mapping(map) => {
                self.check_keys(map, path, &["group", "overrides"])?;
                let group_path = join(path, "group");
                let group = self.str(
                    self.required(map, path, "group")?,
                    &group_path,
                    "a group name",
                )?;
                let group = self.group_ref(group, &group_path, groups)?;
                let overrides = match map.get("overrides") {
                    None => Vec::new(),
                    Some(list) => self.overrides(list, &join(path, "overrides"), vocabulary)?,
                };
                Ok((group, overrides))
            }
            other => Err(self.err(
                path,
                InvalidPolicy::WrongType {
                    expected: "a group name or `{ group: .., overrides: [..] }`",
                    found: describe(other),
                },
            )),
        }
    }

    fn group_ref(&self, name: &str, path: &str, groups: &[Group]) -> Result<usize> {
        groups
            .iter()
            .position(|group| group.name == name)
            .ok_or_else(|| {
                let hint = if name.contains(char::is_whitespace) {
                    " (overrides use the long form `{ group: .., overrides: [..] }`)"
                } else {
                    ""
                };
                self.err(
                    path,
                    InvalidPolicy::UnknownGroup {
                        group: name.to_owned(),
                        hint,
                    },
                )
            })
    }

    fn overrides(
        &self,
        value: &Value,
        path: &str,
        vocabulary: &Vocabulary<'_>,
    ) -> Result<Vec<Override>> {
        let list = self.sequence(value, path, "a list of `+permission` / `-permission`")?;
        let mut overrides: Vec<Override> = Vec::with_capacity(list.len());
        for (position, item) in list.iter().enumerate() {
            let item_path = format!("{path}[{position}]");
            let text = self.str(item, &item_path, "`+permission` or `-permission`")?;
            let malformed = || {
                self.err(
                    &item_path,
                    InvalidPolicy::MalformedOverride {
                        value: text.to_owned(),
                    },
                )
            };
            let (grant, name) = if let Some(name) = text.strip_prefix('+') {
                (true, name)
            } else if let Some(name) = text.strip_prefix('-') {
                (false, name)
            } else {
                return Err(malformed());
            };
            if name.is_empty() {
                return Err(malformed());
            }
            let id = vocabulary.id(name).ok_or_else(|| {
                self.err(
                    &item_path,
                    InvalidPolicy::UnknownPermission {
                        permission: name.to_owned(),
                    },
                )
            })?;
            if overrides.iter().any(|existing| existing.permission() == id) {
                return Err(self.err(
                    &item_path,
                    InvalidPolicy::DuplicateOverride {
                        permission: name.to_owned(),
                    },
                ));
            }
            overrides.push(if grant {
                Override::Grant(id)
            } else {
                Override::Deny(id)
            });
        }
        Ok(overrides)
    }

    /// `signals.tcf`: `purposes` and `special-features`.
    fn tcf(&self, value: &Value, vocabulary: &Vocabulary<'_>) -> Result<TcfMapping> {
        let path = "signals.tcf";
        let map = self.mapping(value, path)?;
        self.check_keys(map, path, &["purposes", "special-features"])?;
        let mut tcf = TcfMapping {
            source_of: vec![None; vocabulary.len()],
            ..TcfMapping::default()
        };
        // The key path of the entry that mapped each permission, to name it in duplicate errors.
        let mut mapped_at: Vec<Option<String>> = vec![None; vocabulary.len()];

        let purposes_path = join(path, "purposes");
        let purposes = self.mapping(self.required(map, path, "purposes")?, &purposes_path)?;
        for (key, body) in purposes {
            let purpose = self.tcf_number(key, &purposes_path, "purpose", MAX_TCF_PURPOSE)?;
            let entry_path = join(&purposes_path, &purpose.to_string());
            let body = self.mapping(body, &entry_path)?;
            self.check_keys(body, &entry_path, &["permission", "legitimate-interest"])?;
            let permission_path = join(&entry_path, "permission");
            let name = self.str(
                self.required(body, &entry_path, "permission")?,
                &permission_path,
                "a permission name",
            )?;
            let id = self.permission_ref(name, &permission_path, vocabulary)?;
            let li_path = join(&entry_path, "legitimate-interest");
            let li = match body.get("legitimate-interest") {
                None => TCF_LI_DEFAULT_PURPOSES.contains(&purpose),
                Some(Value::Bool(li)) => *li,
                Some(other) => {
                    return Err(self.err(
                        &li_path,
                        InvalidPolicy::WrongType {
                            expected: "`true` or `false`",
                            found: describe(other),
                        },
                    ));
                }
            };
            if li && TCF_LI_FORBIDDEN_PURPOSES.contains(&purpose) {
                return Err(self.err(
                    &li_path,
                    InvalidPolicy::LegitimateInterestForbidden { purpose },
                ));
            }
            self.claim(&mut mapped_at, id, &permission_path, vocabulary)?;
            let bit = usize::from(purpose - 1);
            if let Some(slot) = tcf.purpose_bits.get_mut(bit) {
                *slot |= single(id).bits();
            }
            if li {
                tcf.li_allowed |= 1 << bit;
            }
            tcf.mapped.insert(id);
            if let Some(slot) = tcf.source_of.get_mut(id.index()) {
                *slot = Some(TcfSource::Purpose(purpose));
            }
        }

        let features_path = join(path, "special-features");
        let features = self.mapping(
            self.required(map, path, "special-features")?,
            &features_path,
        )?;
        for (key, name) in features {
            let feature = self.tcf_number(
                key,
                &features_path,
                "special feature",
                MAX_TCF_SPECIAL_FEATURE,
            )?;
            let entry_path = join(&features_path, &feature.to_string());
            let name = self.str(name, &entry_path, "a permission name")?;
            let id = self.permission_ref(name, &entry_path, vocabulary)?;
            self.claim(&mut mapped_at, id, &entry_path, vocabulary)?;
            if let Some(slot) = tcf.special_feature_bits.get_mut(usize::from(feature - 1)) {
                *slot |= single(id).bits();
            }
            tcf.mapped.insert(id);
            if let Some(slot) = tcf.source_of.get_mut(id.index()) {
                *slot = Some(TcfSource::SpecialFeature(feature));
            }
        }
        Ok(tcf)
    }

    /// Records that the entry at `path` maps `id`; one TCF field per permission.
    fn claim(
        &self,
        mapped_at: &mut [Option<String>],
        id: PermissionId,
        path: &str,
        vocabulary: &Vocabulary<'_>,
    ) -> Result<()> {
        let Some(slot) = mapped_at.get_mut(id.index()) else {
            return Ok(());
        };
        if let Some(first) = slot {
            return Err(self.err(
                path,
                InvalidPolicy::DuplicateSignalMapping {
                    permission: vocabulary.name(id).to_owned(),
                    first: first.clone(),
                },
            ));
        }
        *slot = Some(path.to_owned());
        Ok(())
    }

    /// `signals.us-opt-outs`: one revocation list per US-style opt-out, all required.
    fn opt_outs(&self, value: &Value, vocabulary: &Vocabulary<'_>) -> Result<OptOutRevocations> {
        let path = "signals.us-opt-outs";
        let map = self.mapping(value, path)?;
        let keys = UsOptOut::ALL.map(UsOptOut::yaml_key);
        self.check_keys(map, path, &keys)?;
        let mut revocations = OptOutRevocations::default();
        for (signal, slot) in UsOptOut::ALL.into_iter().zip(&mut revocations.by_signal) {
            let list_path = join(path, signal.yaml_key());
            let list = self.sequence(
                self.required(map, path, signal.yaml_key())?,
                &list_path,
                "a list of permission names",
            )?;
            for (position, item) in list.iter().enumerate() {
                let item_path = format!("{list_path}[{position}]");
                let name = self.str(item, &item_path, "a permission name")?;
                let id = self.permission_ref(name, &item_path, vocabulary)?;
                if !slot.insert(id) {
                    return Err(self.err(
                        &item_path,
                        InvalidPolicy::DuplicatePermission {
                            permission: name.to_owned(),
                        },
                    ));
                }
            }
        }
        Ok(revocations)
    }

    // ---- value helpers: each names the path it failed at ----

    fn permission_ref(
        &self,
        name: &str,
        path: &str,
        vocabulary: &Vocabulary<'_>,
    ) -> Result<PermissionId> {
        vocabulary.id(name).ok_or_else(|| {
            self.err(
                path,
                InvalidPolicy::UnknownPermission {
                    permission: name.to_owned(),
                },
            )
        })
    }

    fn tcf_number(&self, key: &Value, path: &str, kind: &'static str, max: u8) -> Result<u8> {
        let text = scalar_text(key);
        let number = match key {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.parse::<u64>().ok(),
            _ => None,
        };
        number
            .and_then(|number| u8::try_from(number).ok())
            .filter(|number| (1..=max).contains(number))
            .ok_or_else(|| {
                self.err(
                    &join(path, &text),
                    InvalidPolicy::InvalidTcfNumber {
                        kind,
                        value: text.clone(),
                        max,
                    },
                )
            })
    }

    /// A key that must be a lowercase kebab-case name.
    fn name<'v>(&self, key: &'v Value, parent: &str) -> Result<&'v str> {
        let name = self.key_str(key, parent)?;
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|first| first.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(name)
        } else {
            Err(self.err(
                &join(parent, name),
                InvalidPolicy::InvalidName {
                    name: name.to_owned(),
                },
            ))
        }
    }

    fn key_str<'v>(&self, key: &'v Value, parent: &str) -> Result<&'v str> {
        key.as_str().ok_or_else(|| {
            self.err(
                &join(parent, &scalar_text(key)),
                InvalidPolicy::WrongType {
                    expected: "a string key",
                    found: describe(key),
                },
            )
        })
    }

    fn check_keys(&self, map: &Mapping, path: &str, allowed: &[&str]) -> Result<()> {
        for key in map.keys() {
            let key = self.key_str(key, path)?;
            if !allowed.contains(&key) {
                let expected = allowed
                    .iter()
                    .map(|allowed| format!("`{allowed}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(self.err(
                    &join(path, key),
                    InvalidPolicy::UnknownKey {
                        key: key.to_owned(),
                        expected,
                    },
                ));
            }
        }
        Ok(())
    }

    fn required<'v>(&self, map: &'v Mapping, path: &str, key: &str) -> Result<&'v Value> {
        map.get(key).ok_or_else(|| {
            self.err(
                if path.is_empty() { "(root)" } else { path },
                InvalidPolicy::MissingKey {
                    key: key.to_owned(),
                },
            )
        })
    }

    fn mapping<'v>(&self, value: &'v Value, path: &str) -> Result<&'v Mapping> {
        value.as_mapping().ok_or_else(|| {
            self.err(
                path,
                InvalidPolicy::WrongType {
                    expected: "a mapping",
                    found: describe(value),
                },
            )
        })
    }

    fn sequence<'v>(
        &self,
        value: &'v Value,
        path: &str,
        expected: &'static str,
    ) -> Result<&'v [Value]> {
        value.as_sequence().map(Vec::as_slice).ok_or_else(|| {
            self.err(
                path,
                InvalidPolicy::WrongType {
                    expected,
                    found: describe(value),
                },
            )
        })
    }

    fn str<'v>(&self, value: &'v Value, path: &str, expected: &'static str) -> Result<&'v str> {
        value.as_str().ok_or_else(|| {
            self.err(
                path,
                InvalidPolicy::WrongType {
                    expected,
                    found: describe(value),
                },
            )
        })
    }

    fn bool(&self, map: &Mapping, path: &str, key: &str) -> Result<bool> {
        let value = self.required(map, path, key)?;
        value.as_bool().ok_or_else(|| {
            self.err(
                &join(path, key),
                InvalidPolicy::WrongType {
                    expected: "`true` or `false`",
                    found: describe(value),
                },
            )
        })
    }
}

/// The permission vocabulary while the rest of the file is validated against it.
struct Vocabulary<'a>(&'a [PermissionDef]);

impl Vocabulary<'_> {
    fn id(&self, name: &str) -> Option<PermissionId> {
        self.0
            .iter()
            .position(|permission| permission.name == name)
            .and_then(PermissionId::new)
    }

    fn name(&self, id: PermissionId) -> &str {
        self.0
            .get(id.index())
            .map_or("", |permission| permission.name.as_str())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn all(&self) -> PermissionSet {
        PermissionSet::first(self.0.len())
    }
}

fn single(id: PermissionId) -> PermissionSet {
    let mut set = PermissionSet::EMPTY;
    set.insert(id);
    set
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A scalar as the file spells it, for error messages.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(value) => value.to_string(),
        Value::Number(value) => value.to_string(),
        Value::String(value) => value.clone(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => describe(value),
    }
}

/// A value's YAML type, briefly, for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(value) => format!("boolean `{value}`"),
        Value::Number(value) => format!("number `{value}`"),
        Value::String(value) => format!("string `{value}`"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("tagged value `{}`", tagged.tag),
    }
}
