//! IAB CCPA US Privacy strings (`us_privacy` cookie, GPP section 6 `uspv1`): four characters,
//! version `1` then notice, opt-out-of-sale and LSPA flags, each `Y`, `N` or `-`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::ConsentError;

/// A decoded US Privacy string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsPrivacy {
    /// Specification version (1).
    pub version: u8,
    /// Explicit notice given: `Y`, `N` or `-` (not applicable).
    pub notice: char,
    /// Opted out of sale: `Y`, `N` or `-`.
    pub opt_out_sale: char,
    /// Covered by the LSPA: `Y`, `N` or `-`.
    pub lspa: char,
}

impl UsPrivacy {
    /// Whether the user opted out of the sale of personal information.
    #[must_use]
    pub fn opted_out(&self) -> bool {
        self.opt_out_sale == 'Y'
    }

    /// The JSON shape of the `usp` kind (`version, notice, opt_out_sale, lspa, opted_out`).
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "version": self.version,
            "notice": self.notice.to_string(),
            "opt_out_sale": self.opt_out_sale.to_string(),
            "lspa": self.lspa.to_string(),
            "opted_out": self.opted_out(),
        })
    }

    /// The JSON shape inside a GPP `uspv1` section (no `opted_out`).
    #[must_use]
    pub fn to_section_json(&self) -> Value {
        json!({
            "version": self.version,
            "notice": self.notice.to_string(),
            "opt_out_sale": self.opt_out_sale.to_string(),
            "lspa": self.lspa.to_string(),
        })
    }
}

impl FromStr for UsPrivacy {
    type Err = ConsentError;

    /// Parses exactly four characters; lowercase `y`/`n` are accepted and normalised.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 4 {
            return Err(ConsentError::InvalidUsPrivacy {
                reason: "must be exactly 4 characters",
            });
        }
        if b[0] != b'1' {
            return Err(ConsentError::InvalidUsPrivacy {
                reason: "unsupported version (expected `1`)",
            });
        }
        let flag = |c: u8| match c.to_ascii_uppercase() {
            c @ (b'Y' | b'N' | b'-') => Ok(char::from(c)),
            _ => Err(ConsentError::InvalidUsPrivacy {
                reason: "flags must be `Y`, `N` or `-`",
            }),
        };
        Ok(UsPrivacy {
            version: 1,
            notice: flag(b[1])?,
            opt_out_sale: flag(b[2])?,
            lspa: flag(b[3])?,
        })
    }
}

impl fmt::Display for UsPrivacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}{}",
            self.version, self.notice, self.opt_out_sale, self.lspa
        )
    }
}

impl<'de> Deserialize<'de> for UsPrivacy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
