//! Test doubles: a request view, a recording provider host, a TC string encoder.

use std::net::IpAddr;

use gatehouse_core::pipeline::{
    Classification, EcOutput, Evidence, FixedClock, Location, PagePipeline, PipelineSettings,
    ProviderFailure, ProviderHost, ProviderKind, ProviderSpec, RequestOutcome, RequestView,
};
use gatehouse_core::policy::Policy;
use gatehouse_core::provider::{Read, Reads};

/// 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000;
pub const CLOCK: FixedClock = FixedClock(NOW);
pub const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0 Safari/537.36";
pub const CLIENT: &str = "203.0.113.7";

pub fn policy() -> &'static Policy {
    Policy::embedded().expect("embedded policy")
}

/// A request as a host would present it.
#[derive(Clone, Debug)]
pub struct View {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub client_ip: Option<IpAddr>,
}

impl View {
    /// A browser's `GET /` from [`CLIENT`] with a User-Agent.
    pub fn page() -> Self {
        Self {
            method: "GET".into(),
            path: "/".into(),
            query: None,
            headers: vec![("user-agent".into(), UA.into())],
            client_ip: Some(CLIENT.parse().expect("ip")),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn path(mut self, path: &str) -> Self {
        self.path = path.into();
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = method.into();
        self
    }

    /// The request's headers as the forwarded request starts out.
    pub fn forwarded_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect()
    }
}

impl RequestView for View {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
}

/// One recorded provider call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Locate(Evidence),
    Classify(Evidence),
    Generate(Evidence, Option<String>),
}

impl Call {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::Locate(_) => ProviderKind::Geo,
            Self::Classify(_) => ProviderKind::Device,
            Self::Generate(..) => ProviderKind::EdgeCookie,
        }
    }
}

type EcBehaviour = Box<dyn Fn(Option<&str>) -> Result<EcOutput, ProviderFailure> + Send + Sync>;

/// A provider host whose answers are set by the test and which records every call.
pub struct Mock {
    pub geo: Option<(ProviderSpec, Result<Location, ProviderFailure>)>,
    pub device: Option<(ProviderSpec, Result<Classification, ProviderFailure>)>,
    pub ec: Option<(ProviderSpec, EcBehaviour)>,
    pub calls: Vec<Call>,
}

pub const MINTED: &str = "minted0123456789.abcDEF";

/// A spec requiring `required` (permission names) and reading `reads`.
pub fn spec(required: &[&str], reads: &[Read]) -> ProviderSpec {
    ProviderSpec {
        required: policy()
            .set_from_names(required)
            .expect("known permissions"),
        reads: Reads::from_declared(reads),
    }
}

impl Mock {
    /// No provider configured.
    pub fn none() -> Self {
        Self {
            geo: None,
            device: None,
            ec: None,
            calls: Vec::new(),
        }
    }

    /// Geo answering `country` (and `region`), device answering `Desktop`, and an HMAC-like Edge
    /// Cookie provider that keeps a well-formed current value and otherwise mints [`MINTED`].
    pub fn standard(country: Option<&str>, region: Option<&str>) -> Self {
        Self::none()
            .with_geo(Ok(Location {
                country: country.map(str::to_owned),
                region: region.map(str::to_owned),
            }))
            .with_device(&[], Ok(desktop()))
            .with_ec(|current| {
                Ok(EcOutput {
                    id: Some(current.unwrap_or(MINTED).to_owned()),
                    headers: Vec::new(),
                })
            })
    }

    pub fn with_geo(mut self, answer: Result<Location, ProviderFailure>) -> Self {
        self.geo = Some((spec(&[], &[Read::Header("x-geo-country".into())]), answer));
        self
    }

    pub fn with_device(
        mut self,
        required: &[&str],
        answer: Result<Classification, ProviderFailure>,
    ) -> Self {
        self.device = Some((spec(required, &[Read::UserAgent]), answer));
        self
    }

    pub fn with_ec(
        mut self,
        behaviour: impl Fn(Option<&str>) -> Result<EcOutput, ProviderFailure> + Send + Sync + 'static,
    ) -> Self {
        self.ec = Some((
            spec(&["store-on-device"], &[Read::ClientIp, Read::UserAgent]),
            Box::new(behaviour),
        ));
        self
    }

    pub fn called(&self, kind: ProviderKind) -> bool {
        self.calls.iter().any(|call| call.kind() == kind)
    }

    pub fn evidence(&self, kind: ProviderKind) -> Option<&Evidence> {
        self.calls
            .iter()
            .find(|c| c.kind() == kind)
            .map(|c| match c {
                Call::Locate(e) | Call::Classify(e) | Call::Generate(e, _) => e,
            })
    }
}

impl ProviderHost for Mock {
    fn spec(&self, kind: ProviderKind) -> Option<&ProviderSpec> {
        match kind {
            ProviderKind::Geo => self.geo.as_ref().map(|(s, _)| s),
            ProviderKind::Device => self.device.as_ref().map(|(s, _)| s),
            ProviderKind::EdgeCookie => self.ec.as_ref().map(|(s, _)| s),
        }
    }

    fn locate(&mut self, evidence: &Evidence) -> Result<Location, ProviderFailure> {
        self.calls.push(Call::Locate(evidence.clone()));
        self.geo.as_ref().expect("geo configured").1.clone()
    }

    fn classify(&mut self, evidence: &Evidence) -> Result<Classification, ProviderFailure> {
        self.calls.push(Call::Classify(evidence.clone()));
        self.device.as_ref().expect("device configured").1.clone()
    }

    fn generate_edge_cookie(
        &mut self,
        evidence: &Evidence,
        current: Option<&str>,
    ) -> Result<EcOutput, ProviderFailure> {
        self.calls
            .push(Call::Generate(evidence.clone(), current.map(str::to_owned)));
        (self.ec.as_ref().expect("ec configured").1)(current)
    }
}

pub fn desktop() -> Classification {
    Classification {
        class: gatehouse_core::pipeline::DeviceClass::Desktop,
        bot_name: None,
    }
}

/// A pipeline on the embedded policy with `default_country` and default settings.
pub fn pipeline(default_country: &str) -> PagePipeline<'static> {
    pipeline_with(PipelineSettings::new(default_country))
}

pub fn pipeline_with(settings: PipelineSettings) -> PagePipeline<'static> {
    PagePipeline::new(policy(), settings).expect("valid settings")
}

/// Runs `view` through `pipeline` with the fixed clock.
pub fn run(
    pipeline: &PagePipeline<'static>,
    view: &View,
    providers: &mut Mock,
) -> RequestOutcome<'static> {
    pipeline.run(view, &CLOCK, providers)
}

/// A TCF v2 core string (base64url) consenting to `purposes` and opting in to `special_features`,
/// last updated a day before [`NOW`]. Built from the TCF v2.2 core-segment bit layout.
pub fn tc_string(purposes: &[u8], special_features: &[u8]) -> String {
    tc_string_updated_at(purposes, special_features, NOW - 86_400)
}

/// As [`tc_string`], last updated at `updated_unix` (seconds since the epoch).
pub fn tc_string_updated_at(purposes: &[u8], special_features: &[u8], updated_unix: u64) -> String {
    let mut bits = String::new();
    let mut push = |value: u64, width: usize| {
        for i in (0..width).rev() {
            bits.push(if value >> i & 1 == 1 { '1' } else { '0' });
        }
    };
    let updated_ds = updated_unix * 10;
    push(2, 6); // version
    push(updated_ds, 36); // created
    push(updated_ds, 36); // last updated
    push(7, 12); // cmp id
    push(1, 12); // cmp version
    push(1, 6); // consent screen
    push(encode_letters("EN"), 12); // consent language
    push(100, 12); // vendor list version
    push(4, 6); // policy version
    push(1, 1); // is service specific
    push(0, 1); // non-standard texts
    let mut features = 0;
    for &f in special_features {
        features |= 1 << (12 - f);
    }
    push(features, 12);
    let mut consents = 0;
    for &p in purposes {
        consents |= 1 << (24 - p);
    }
    push(consents, 24); // purpose consents
    push(0, 24); // purpose legitimate interests
    push(0, 1); // purpose one treatment
    push(encode_letters("DE"), 12); // publisher cc
    push(1, 16); // vendor consents: max vendor id 1
    push(0, 1); // bitfield
    push(1, 1); // vendor 1 consents
    push(1, 16); // vendor LI: max vendor id 1
    push(0, 1); // bitfield
    push(0, 1);
    push(0, 12); // no publisher restrictions
    bits_to_base64url(&bits)
}

fn encode_letters(code: &str) -> u64 {
    code.bytes()
        .fold(0, |acc, b| acc << 6 | u64::from(b - b'A'))
}

fn bits_to_base64url(bits: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut padded = bits.to_owned();
    while !padded.len().is_multiple_of(6) {
        padded.push('0');
    }
    padded
        .as_bytes()
        .chunks(6)
        .map(|c| {
            let v = c
                .iter()
                .fold(0usize, |acc, &b| acc << 1 | usize::from(b == b'1'));
            char::from(ALPHABET[v])
        })
        .collect()
}

/// Every purpose the embedded policy maps (1 to 11) and both special features.
pub fn full_consent() -> String {
    tc_string(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[1, 2])
}

/// Header value of `name` in a header list, as a string.
pub fn values<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| std::str::from_utf8(v).expect("utf-8"))
        .collect()
}
