//! Google Additional Consent Mode strings (`addtl_consent` cookie): `1~1.35.41` (v1: consented
//! provider ids) and `2~1.35.41~dv.9.21` (v2: consented, then disclosed provider ids).

use serde_json::{Value, json};

use super::{ConsentError, SignalKind, check_length};

/// A decoded Additional Consent string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdditionalConsent {
    /// Format version (1 or 2).
    pub version: u8,
    /// Consented Google ATP provider ids, sorted and deduplicated.
    pub consented_providers: Vec<u32>,
    /// Disclosed provider ids (v2 only), sorted and deduplicated.
    pub disclosed_providers: Vec<u32>,
}

impl AdditionalConsent {
    /// Decodes an AC string of at most `max_len` bytes.
    ///
    /// # Errors
    /// [`ConsentError::InvalidAdditionalConsent`] for an unknown version, a bad id list or a v2
    /// string without its `dv.` part; [`ConsentError::TooLong`] over the limit.
    pub fn decode(input: &str, max_len: usize) -> Result<Self, ConsentError> {
        check_length(SignalKind::Ac, input, max_len)?;
        let bad = |reason| ConsentError::InvalidAdditionalConsent { reason };
        let mut parts = input.split('~');
        let version = match parts.next() {
            Some("1") => 1,
            Some("2") => 2,
            _ => return Err(bad("unsupported version (expected `1~` or `2~`)")),
        };
        let consented_providers = parse_ids(parts.next().ok_or(bad("missing provider list"))?)?;
        let disclosed_providers = if version == 2 {
            let dv = parts.next().ok_or(bad("v2 needs a `dv.` disclosed list"))?;
            let ids = dv
                .strip_prefix("dv.")
                .or_else(|| (dv == "dv").then_some(""))
                .ok_or(bad("v2 disclosed list must start with `dv.`"))?;
            parse_ids(ids)?
        } else {
            Vec::new()
        };
        if parts.next().is_some() {
            return Err(bad("too many `~` parts"));
        }
        Ok(AdditionalConsent {
            version,
            consented_providers,
            disclosed_providers,
        })
    }

    /// The JSON shape of the `ac` kind.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "version": self.version,
            "consented_providers": self.consented_providers,
        });
        if self.version == 2
            && let Some(obj) = v.as_object_mut()
        {
            obj.insert(
                "disclosed_providers".into(),
                json!(self.disclosed_providers),
            );
        }
        v
    }
}

fn parse_ids(list: &str) -> Result<Vec<u32>, ConsentError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = list
        .split('.')
        .map(|s| {
            if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConsentError::InvalidAdditionalConsent {
                    reason: "provider ids must be positive integers separated by `.`",
                });
            }
            s.parse::<u32>().ok().filter(|&id| id > 0).ok_or(
                ConsentError::InvalidAdditionalConsent {
                    reason: "provider ids must be positive integers separated by `.`",
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}
