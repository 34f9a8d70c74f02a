//! GPP US sections: national (`usnat`, id 7) and the state sections (ids 8–27).
//!
//! Every US section is a flat list of 2-bit codes after a 6-bit version, so one table per
//! section drives decoding and the JSON output. Field names are the IAB field names in
//! snake_case; values are the IAB integer codes (0 n/a, 1 opted out / no consent / provided,
//! 2 did not opt out / consent / not provided). `usnat` picks its v1 or v2 layout by the bit
//! length of the core segment, not by its version field, because CMPs in the wild mislabel it.
//! Unknown sub-section types are skipped (forward compatibility); a GPC sub-section (type 1)
//! sets `gpc`.

use serde_json::{Map, Value, json};

use super::ConsentError;
use super::bits::decode_base64url;

/// One field of a US section layout.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// A scalar of the given bit width.
    Int(&'static str, u8),
    /// A list of `n` 2-bit codes.
    List(&'static str, u8),
}

use Field::{Int, List};

/// The layout of one US section version.
#[derive(Debug)]
pub struct UsLayout {
    id: u16,
    name: &'static str,
    fields: &'static [Field],
}

impl UsLayout {
    fn bit_len(&self) -> usize {
        self.fields
            .iter()
            .map(|f| match f {
                Int(_, bits) => usize::from(*bits),
                List(_, n) => 2 * usize::from(*n),
            })
            .sum()
    }

    fn value_count(&self) -> usize {
        self.fields
            .iter()
            .map(|f| match f {
                Int(..) => 1,
                List(_, n) => usize::from(*n),
            })
            .sum()
    }
}

const MSPA: [Field; 3] = [
    Int("mspa_covered_transaction", 2),
    Int("mspa_opt_out_option_mode", 2),
    Int("mspa_service_provider_mode", 2),
];

macro_rules! layout {
    ($id:expr, $name:expr, [$($f:expr),* $(,)?]) => {
        UsLayout { id: $id, name: $name, fields: &[$($f),*] }
    };
    ($id:expr, $name:expr, [$($f:expr),* $(,)?] + mspa) => {
        UsLayout { id: $id, name: $name, fields: &[$($f,)* MSPA[0], MSPA[1], MSPA[2]] }
    };
}

const VERSION: Field = Int("version", 6);

static USNAT_V1: UsLayout = layout!(
    7,
    "usnat",
    [
        VERSION,
        Int("sharing_notice", 2),
        Int("sale_opt_out_notice", 2),
        Int("sharing_opt_out_notice", 2),
        Int("targeted_advertising_opt_out_notice", 2),
        Int("sensitive_data_processing_opt_out_notice", 2),
        Int("sensitive_data_limit_use_notice", 2),
        Int("sale_opt_out", 2),
        Int("sharing_opt_out", 2),
        Int("targeted_advertising_opt_out", 2),
        List("sensitive_data_processing", 12),
        List("known_child_sensitive_data_consents", 2),
        Int("personal_data_consents", 2),
    ] + mspa
);

static USNAT_V2: UsLayout = layout!(
    7,
    "usnat",
    [
        VERSION,
        Int("sharing_notice", 2),
        Int("sale_opt_out_notice", 2),
        Int("sharing_opt_out_notice", 2),
        Int("targeted_advertising_opt_out_notice", 2),
        Int("sensitive_data_processing_opt_out_notice", 2),
        Int("sensitive_data_limit_use_notice", 2),
        Int("sale_opt_out", 2),
        Int("sharing_opt_out", 2),
        Int("targeted_advertising_opt_out", 2),
        List("sensitive_data_processing", 16),
        List("known_child_sensitive_data_consents", 3),
        Int("personal_data_consents", 2),
    ] + mspa
);

/// State layouts whose notices are `sharing_notice, sale_opt_out_notice,
/// targeted_advertising_opt_out_notice` (VA, CO, CT, MT) or `processing_notice, ...` (FL, OR, TX,
/// DE, NE, NH, NJ, TN, MN); they differ in list lengths and trailing fields.
static STATES: [UsLayout; 16] = [
    layout!(
        8,
        "usca",
        [
            VERSION,
            Int("sale_opt_out_notice", 2),
            Int("sharing_opt_out_notice", 2),
            Int("sensitive_data_limit_use_notice", 2),
            Int("sale_opt_out", 2),
            Int("sharing_opt_out", 2),
            List("sensitive_data_processing", 9),
            List("known_child_sensitive_data_consents", 2),
            Int("personal_data_consents", 2),
        ] + mspa
    ),
    layout!(
        9,
        "usva",
        [
            VERSION,
            Int("sharing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            Int("known_child_sensitive_data_consents", 2),
        ] + mspa
    ),
    layout!(
        10,
        "usco",
        [
            VERSION,
            Int("sharing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 7),
            Int("known_child_sensitive_data_consents", 2),
        ] + mspa
    ),
    layout!(
        11,
        "usut",
        [
            VERSION,
            Int("sharing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sensitive_data_processing_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            Int("known_child_sensitive_data_consents", 2),
        ] + mspa
    ),
    layout!(
        12,
        "usct",
        [
            VERSION,
            Int("sharing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            List("known_child_sensitive_data_consents", 3),
        ] + mspa
    ),
    layout!(
        13,
        "usfl",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            List("known_child_sensitive_data_consents", 3),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        14,
        "usmt",
        [
            VERSION,
            Int("sharing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            List("known_child_sensitive_data_consents", 3),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        15,
        "usor",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 11),
            List("known_child_sensitive_data_consents", 3),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        16,
        "ustx",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            Int("known_child_sensitive_data_consents", 2),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        17,
        "usde",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 9),
            List("known_child_sensitive_data_consents", 5),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        18,
        "usia",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sensitive_data_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            Int("known_child_sensitive_data_consents", 2),
        ] + mspa
    ),
    layout!(
        19,
        "usne",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            Int("known_child_sensitive_data_consents", 2),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        20,
        "usnh",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            List("known_child_sensitive_data_consents", 3),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        21,
        "usnj",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 10),
            List("known_child_sensitive_data_consents", 5),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        22,
        "ustn",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            Int("known_child_sensitive_data_consents", 2),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
    layout!(
        23,
        "usmn",
        [
            VERSION,
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            List("sensitive_data_processing", 8),
            Int("known_child_sensitive_data_consents", 2),
            Int("additional_data_processing_consent", 2),
        ] + mspa
    ),
];

/// The MSPA-first layouts of the 2025 state sections (MD, IN, KY, RI): the core segment opens with
/// `mspa_version, mspa_covered_transaction, mspa_mode` (iabgpp-es `Us{Md,In,Ky,Ri}CoreSegment`).
static MSPA_STATES: [UsLayout; 4] = [
    layout!(
        24,
        "usmd",
        [
            Int("mspa_version", 6),
            Int("mspa_covered_transaction", 2),
            Int("mspa_mode", 2),
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            Int("additional_data_processing_consent", 2),
        ]
    ),
    layout!(
        25,
        "usin",
        [
            Int("mspa_version", 6),
            Int("mspa_covered_transaction", 2),
            Int("mspa_mode", 2),
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            Int("known_child_sensitive_data_consents", 2),
            Int("additional_data_processing_consent", 2),
        ]
    ),
    layout!(
        26,
        "usky",
        [
            Int("mspa_version", 6),
            Int("mspa_covered_transaction", 2),
            Int("mspa_mode", 2),
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            Int("known_child_sensitive_data_consents", 2),
            Int("additional_data_processing_consent", 2),
        ]
    ),
    layout!(
        27,
        "usri",
        [
            Int("mspa_version", 6),
            Int("mspa_covered_transaction", 2),
            Int("mspa_mode", 2),
            Int("processing_notice", 2),
            Int("sale_opt_out_notice", 2),
            Int("targeted_advertising_opt_out_notice", 2),
            Int("sale_opt_out", 2),
            Int("targeted_advertising_opt_out", 2),
            Int("known_child_sensitive_data_consents", 2),
            Int("additional_data_processing_consent", 2),
        ]
    ),
];

/// Whether `id` is a US section this module decodes (7..=27).
#[must_use]
pub fn is_us_section(id: u16) -> bool {
    (7..=27).contains(&id)
}

/// The API prefix of a US section id (`usnat`, `usca`, ...).
#[must_use]
pub fn us_section_name(id: u16) -> Option<&'static str> {
    match id {
        7 => Some(USNAT_V1.name),
        _ => layout_for_state(id).map(|l| l.name),
    }
}

/// The opt-out fields a US section has, by section id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptOutFields {
    /// `sale_opt_out`.
    pub sale: bool,
    /// `sharing_opt_out` (usnat, usca).
    pub sharing: bool,
    /// `targeted_advertising_opt_out`.
    pub targeted_advertising: bool,
}

/// The opt-out fields of US section `id` (7..=27), from its layout; `None` for other ids. Every
/// US section may also carry a GPC sub-section. Used to fail closed when such a section is
/// present but does not decode.
#[must_use]
pub fn opt_out_fields(id: u16) -> Option<OptOutFields> {
    let layout = if id == 7 {
        &USNAT_V2
    } else {
        layout_for_state(id)?
    };
    let has = |name: &str| {
        layout.fields.iter().any(|f| match *f {
            Int(n, _) | List(n, _) => n == name,
        })
    };
    Some(OptOutFields {
        sale: has("sale_opt_out"),
        sharing: has("sharing_opt_out"),
        targeted_advertising: has("targeted_advertising_opt_out"),
    })
}

fn layout_for_state(id: u16) -> Option<&'static UsLayout> {
    STATES.iter().chain(MSPA_STATES.iter()).find(|l| l.id == id)
}

/// A decoded GPP US section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsSection {
    layout: &'static UsLayout,
    values: Vec<u8>,
    /// The GPC sub-section value; `None` when the section carries no GPC sub-section.
    pub gpc: Option<bool>,
}

impl PartialEq for UsLayout {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for UsLayout {}

/// A field value of a [`UsSection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsValue<'a> {
    /// A scalar code.
    Int(u8),
    /// A list of codes.
    List(&'a [u8]),
}

impl UsSection {
    /// Decodes US section `id` (7..=27) from its GPP text.
    ///
    /// # Errors
    /// [`ConsentError::UnsupportedSection`] for ids outside 7..=27, invalid base64url, or a core
    /// segment shorter than its layout.
    pub fn decode(id: u16, input: &str) -> Result<Self, ConsentError> {
        let mut segments = input.split('.');
        let core = decode_base64url(segments.next().unwrap_or_default())?;
        let layout = if id == 7 {
            // Pick by length: a v2 core holds 70 bits (12 characters), a v1 core 60 (11).
            if core.bit_len() >= USNAT_V2.bit_len() {
                &USNAT_V2
            } else {
                &USNAT_V1
            }
        } else {
            layout_for_state(id).ok_or(ConsentError::UnsupportedSection(id))?
        };
        let mut r = core.reader();
        let mut values = Vec::with_capacity(layout.value_count());
        for field in layout.fields {
            match *field {
                Int(name, bits) => values.push(r.read(u32::from(bits), name)? as u8),
                List(name, n) => {
                    for _ in 0..n {
                        values.push(r.read(2, name)? as u8);
                    }
                }
            }
        }
        let mut gpc = None;
        for segment in segments {
            let sub = decode_base64url(segment)?;
            let mut r = sub.reader();
            if r.read(2, "subsection_type")? == 1 {
                gpc = Some(r.read_bool("gpc")?);
            }
        }
        Ok(UsSection {
            layout,
            values,
            gpc,
        })
    }

    /// The GPP section id.
    #[must_use]
    pub fn id(&self) -> u16 {
        self.layout.id
    }

    /// The GPP API prefix (`usnat`, `usca`, ...).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.layout.name
    }

    /// A field by its snake_case IAB name.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<UsValue<'_>> {
        let mut at = 0;
        for field in self.layout.fields {
            match *field {
                Int(n, _) => {
                    if n == name {
                        return self.values.get(at).map(|&v| UsValue::Int(v));
                    }
                    at += 1;
                }
                List(n, len) => {
                    let end = at + usize::from(len);
                    if n == name {
                        return self.values.get(at..end).map(UsValue::List);
                    }
                    at = end;
                }
            }
        }
        None
    }

    fn int(&self, name: &str) -> Option<u8> {
        match self.field(name) {
            Some(UsValue::Int(v)) => Some(v),
            _ => None,
        }
    }

    /// `sale_opt_out` code (1 = opted out), when the section has the field.
    #[must_use]
    pub fn sale_opt_out(&self) -> Option<u8> {
        self.int("sale_opt_out")
    }

    /// `sharing_opt_out` code (1 = opted out), when the section has the field.
    #[must_use]
    pub fn sharing_opt_out(&self) -> Option<u8> {
        self.int("sharing_opt_out")
    }

    /// `targeted_advertising_opt_out` code (1 = opted out), when the section has the field.
    #[must_use]
    pub fn targeted_advertising_opt_out(&self) -> Option<u8> {
        self.int("targeted_advertising_opt_out")
    }

    /// The documented JSON shape: fields in layout order, then `gpc` when present.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        let mut at = 0;
        for field in self.layout.fields {
            match *field {
                Int(name, _) => {
                    obj.insert(
                        name.into(),
                        json!(self.values.get(at).copied().unwrap_or(0)),
                    );
                    at += 1;
                }
                List(name, len) => {
                    let end = at + usize::from(len);
                    obj.insert(
                        name.into(),
                        json!(self.values.get(at..end).unwrap_or_default()),
                    );
                    at = end;
                }
            }
        }
        if let Some(gpc) = self.gpc {
            obj.insert("gpc".into(), json!(gpc));
        }
        Value::Object(obj)
    }
}
