//! The page pipeline: one request view in, one [`RequestOutcome`] out (the decision plus the
//! edits to the forwarded request and to the response), with no I/O.
//!
//! A host builds one [`PagePipeline`] at startup from the deployment's settings and, per request,
//! calls [`PagePipeline::run`] with a [`RequestView`], a [`Clock`] and its [`ProviderHost`], then
//! applies [`PagePipeline::edit_forwarded_request`] and [`PagePipeline::edit_response`] to the
//! messages it sends. Every host (standalone, Fastly, wasi:http) therefore decides and edits
//! identically. On a page request ([`is_page_request`]):
//!
//! 1. **Consent.** The consent signals are extracted and decoded once ([`ConsentContext`]).
//! 2. **Geo.** Run before the country is known, so it is gated against the `geo.default_country`
//!    rule plus the request's signals. An answer (even "country unknown") picks the rule as the
//!    policy says ([`Policy::match_jurisdiction`]); a *failure* (trap, deadline, error) resolves
//!    the request against [`Policy::match_geo_failure`], never `geo.default_country`, so a failed
//!    geo call never grants more than a successful answer could.
//! 3. **Permissions** from the matched rule and the signals; the consent context then gets the
//!    matched group's facts (`gdpr_applies`, US Privacy synthesis from GPC).
//! 4. **Device**, gated on the permissions; a failure is an `unknown` device (not a bot).
//! 5. **Edge Cookie**, only with `store-on-device` and the provider's own permissions, never for
//!    a bot; a failure or an invalid answer sets nothing.
//!
//! Invariants:
//! - A provider whose required permissions are not all held is never called; a called provider
//!   receives [`Evidence::collect`] of its own declared reads and nothing else.
//! - Each provider is called at most once per request; non-page requests call none. The one
//!   exception is [`PagePipeline::run_resolve`]: the Edge Cookie provider is called a second
//!   time, with the browser-computed value, only after it refused the cookie the request carried.
//! - Every provider failure is recorded in the decision and handled fail-closed.
//!
//! This module must never perform I/O or read a clock: time comes from [`Clock`].

mod cookie;
mod edits;
mod page;
mod provider_headers;

use std::fmt;

pub use cookie::{
    MAX_COOKIE_VALUE_LEN, expire_cookie_header, find_cookie, is_cookie_domain, is_cookie_name,
    is_cookie_value, is_token, remove_cookie, set_cookie_header, set_cookie_name,
};
pub use edits::{
    DECISION_HEADER, EditableHeaders, ForwardEdits, ResponseEdits, TARGETED_CACHE_HEADERS,
    decision_header, private_cache_control,
};
pub use page::{STATIC_ASSET_EXTENSIONS, is_page_request};
pub use provider_headers::{DropReason, DroppedHeader, NEVER_ALLOWLISTED, ProviderHeaderLimits};

pub use crate::provider::{
    Classification, DeviceClass, EcOutput, Evidence, Location, ProviderFailure, ProviderHost,
    ProviderKind, ProviderSpec, RequestView,
};

use crate::consent::{
    ConsentConfig, ConsentContext, ConsentInput, HeaderLookup, JurisdictionFacts, RawSignals,
};
use crate::identity::record::has_no_signals;
use crate::identity::{
    Identity, IdentityError, IdentityOutcome, IdentityRecord, LiveIdentity, StoredConsent,
    identity_key, lifecycle,
};
use crate::policy::{
    DefaultCountry, MatchedRule, PermissionId, PermissionSet, Policy, PolicyError,
};
use crate::task::block_on;

/// The current time, as the pipeline needs it (consent expiry). Hosts pass their wall clock;
/// tests pass a [`FixedClock`].
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now_unix_seconds(&self) -> u64;
}

/// A clock that always says the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_unix_seconds(&self) -> u64 {
        self.0
    }
}

/// The default `ec.cookie_name`.
pub const DEFAULT_COOKIE_NAME: &str = "ts-ec";
/// The default `ec.max_age_secs` (365 days).
pub const DEFAULT_MAX_AGE_SECS: u64 = 365 * 86_400;
/// The longest `ec.max_age_secs` accepted: 400 days, the cap browsers apply (RFC 6265bis).
pub const MAX_MAX_AGE_SECS: u64 = 400 * 86_400;

/// The Edge Cookie settings of a deployment (`[ec]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeCookieSettings {
    /// `ec.cookie_name` (default `ts-ec`): an RFC 6265 token.
    pub name: String,
    /// `ec.cookie_domain` (default none: a host-only cookie): a hostname.
    pub domain: Option<String>,
    /// `ec.max_age_secs` (default 31536000): 1 to 34560000 (400 days).
    pub max_age_secs: u64,
    /// `ec.allowed_headers`: response headers an Edge Cookie provider may set (never one of
    /// [`NEVER_ALLOWLISTED`]).
    pub allowed_headers: Vec<String>,
    /// `ec.max_headers` and `ec.max_header_bytes`.
    pub header_limits: ProviderHeaderLimits,
}

impl EdgeCookieSettings {
    /// The settings, validated, with the allowed headers lowercased and without duplicates. The
    /// one place `[ec]` values are checked: [`PagePipeline::new`] calls it, and hosts call it
    /// while loading their configuration so startup fails naming the key.
    ///
    /// # Errors
    /// The first invalid value, naming its key (with the index for list items): a cookie name
    /// that is not an RFC 6265 token, a domain that is not a host name, a max-age out of range,
    /// or an allowlisted header that is not a header name or is in [`NEVER_ALLOWLISTED`].
    pub fn validated(mut self) -> Result<Self, PipelineConfigError> {
        if !is_cookie_name(&self.name) {
            return Err(PipelineConfigError::InvalidCookieName {
                name: escaped(&self.name),
            });
        }
        if let Some(domain) = &self.domain
            && !is_cookie_domain(domain)
        {
            return Err(PipelineConfigError::InvalidCookieDomain {
                domain: escaped(domain),
            });
        }
        if !(1..=MAX_MAX_AGE_SECS).contains(&self.max_age_secs) {
            return Err(PipelineConfigError::InvalidMaxAge {
                value: self.max_age_secs,
            });
        }
        let mut allowed = Vec::with_capacity(self.allowed_headers.len());
        for (index, name) in self.allowed_headers.iter().enumerate() {
            if !is_token(name) {
                return Err(PipelineConfigError::InvalidAllowedHeader {
                    index,
                    name: escaped(name),
                });
            }
            let name = name.to_ascii_lowercase();
            if NEVER_ALLOWLISTED.contains(&name.as_str()) {
                return Err(PipelineConfigError::ForbiddenAllowedHeader { index, name });
            }
            if !allowed.contains(&name) {
                allowed.push(name);
            }
        }
        self.allowed_headers = allowed;
        Ok(self)
    }
}

impl Default for EdgeCookieSettings {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_owned(),
            domain: None,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            allowed_headers: Vec::new(),
            header_limits: ProviderHeaderLimits::default(),
        }
    }
}

/// Everything [`PagePipeline::new`] needs besides the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineSettings {
    /// `geo.default_country`: a rule key of the policy.
    pub default_country: String,
    /// `[consent]`.
    pub consent: ConsentConfig,
    /// `[ec]`.
    pub edge_cookie: EdgeCookieSettings,
}

impl PipelineSettings {
    /// Settings with `default_country` and every other value at its default.
    #[must_use]
    pub fn new(default_country: impl Into<String>) -> Self {
        Self {
            default_country: default_country.into(),
            consent: ConsentConfig::default(),
            edge_cookie: EdgeCookieSettings::default(),
        }
    }
}

/// Why [`PagePipeline::new`] refused the settings. Each message names the config key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineConfigError {
    /// `geo.default_country` is missing or names no rule (the message names the key).
    #[error(transparent)]
    DefaultCountry(#[from] PolicyError),
    /// The policy has no `store-on-device` permission, which gates the Edge Cookie.
    #[error(
        "policy `{policy}` does not define the permission `store-on-device`, which gates the edge cookie"
    )]
    MissingStoreOnDevice {
        /// The policy's source name.
        policy: String,
    },
    /// `ec.cookie_name` is not an RFC 6265 token.
    #[error(
        "config key `ec.cookie_name`: `{name}` is not a cookie name (an RFC 6265 token: no spaces, `;`, `=` or quotes)"
    )]
    InvalidCookieName {
        /// The configured value, with control characters escaped.
        name: String,
    },
    /// `ec.cookie_domain` is not a hostname.
    #[error("config key `ec.cookie_domain`: `{domain}` is not a host name such as `example.com`")]
    InvalidCookieDomain {
        /// The configured value, with control characters escaped.
        domain: String,
    },
    /// `ec.max_age_secs` is 0 or over 400 days.
    #[error(
        "config key `ec.max_age_secs`: `{value}` is out of range (1 to {MAX_MAX_AGE_SECS}, 400 days)"
    )]
    InvalidMaxAge {
        /// The configured value.
        value: u64,
    },
    /// `ec.allowed_headers` holds something that is not a header name.
    #[error("config key `ec.allowed_headers[{index}]`: `{name}` is not a valid header name")]
    InvalidAllowedHeader {
        /// The position in the list.
        index: usize,
        /// The configured value, with control characters escaped.
        name: String,
    },
    /// `ec.allowed_headers` holds a header no provider may set.
    #[error(
        "config key `ec.allowed_headers[{index}]`: `{name}` can never be allowlisted (cookie, framing, hop-by-hop, cache or content header)"
    )]
    ForbiddenAllowedHeader {
        /// The position in the list.
        index: usize,
        /// The lowercase header name.
        name: String,
    },
}

/// Control characters and non-ASCII escaped, so a config value never breaks a log line.
fn escaped(text: &str) -> String {
    text.escape_default().to_string()
}

/// The page pipeline of one deployment: built once, shared by every request (`Send + Sync`).
#[derive(Clone, Debug)]
pub struct PagePipeline<'p> {
    policy: &'p Policy,
    default_country: DefaultCountry,
    consent: ConsentConfig,
    cookie: EdgeCookieSettings,
    store_on_device: PermissionId,
}

impl<'p> PagePipeline<'p> {
    /// Validates `settings` against `policy` and builds the pipeline.
    ///
    /// # Errors
    /// [`PipelineConfigError`], naming the config key: an unknown or missing default country, a
    /// policy without `store-on-device`, a cookie name that is not a token, a domain that is not a
    /// hostname, a max-age out of range, or an allowlisted header that is not a header name or is
    /// in [`NEVER_ALLOWLISTED`].
    pub fn new(
        policy: &'p Policy,
        settings: PipelineSettings,
    ) -> Result<Self, PipelineConfigError> {
        let default_country = policy.default_country(&settings.default_country)?;
        let store_on_device = policy.permission_id("store-on-device").ok_or_else(|| {
            PipelineConfigError::MissingStoreOnDevice {
                policy: policy.source().to_owned(),
            }
        })?;
        let cookie = settings.edge_cookie.validated()?;
        Ok(Self {
            policy,
            default_country,
            consent: settings.consent,
            cookie,
            store_on_device,
        })
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &'p Policy {
        self.policy
    }

    /// The validated default jurisdiction.
    #[must_use]
    pub fn default_country(&self) -> &DefaultCountry {
        &self.default_country
    }

    /// The validated Edge Cookie settings (allowed headers lowercased, without duplicates).
    #[must_use]
    pub fn edge_cookie(&self) -> &EdgeCookieSettings {
        &self.cookie
    }

    /// The consent configuration.
    #[must_use]
    pub fn consent_config(&self) -> &ConsentConfig {
        &self.consent
    }

    /// Runs the pipeline for one request. A non-page request gets no decision and no provider
    /// call; its edits still remove the Edge Cookie and any client-sent `gatehouse-decision`
    /// from what is forwarded, and the origin's `Set-Cookie` for the Edge Cookie name from the
    /// response.
    pub fn run(
        &self,
        request: &(dyn RequestView + Sync),
        clock: &(dyn Clock + Sync),
        providers: &mut (dyn ProviderHost + Send),
    ) -> RequestOutcome<'p> {
        block_on(self.run_inner(request, clock, providers, None))
    }

    /// [`PagePipeline::run`] with the Edge Cookie lifecycle applied through an identity store
    /// (see [`crate::identity`] and `docs/identity.md`). On a page request, besides what `run`
    /// does:
    ///
    /// - **Consent persistence**: a request with a well-formed Edge Cookie and no consent
    ///   signal is decided with the consent stored with its record (never a tombstone's, never
    ///   a stored withdrawal); `decision.consent_from_store` says so.
    /// - **Withdrawal**: the request's own signals withdraw ([`ConsentContext::is_explicit_withdrawal`])
    ///   and it carries the cookie → the cookie is expired (`Max-Age=0`, same attributes), the
    ///   record (with its consent) is replaced by a tombstone, no provider is called.
    /// - **Mint**: a new value is stored add-only before it is set; a tombstoned key is revived
    ///   only by compare-and-swap; when the store fails, no cookie and no provider header is set.
    /// - **Keep**: the record is created if missing, revived if tombstoned, and its consent
    ///   replaced when the request's own signals have another fingerprint.
    /// - **Not permitted**: nothing is set and nothing in the store changes.
    ///
    /// Store calls are awaited ([`crate::identity::AsyncIdentityStore`]); provider calls run on
    /// the polling thread. A host without an async runtime runs it with
    /// [`crate::task::block_on`] over [`crate::identity::Inline`].
    pub async fn run_with_identity(
        &self,
        request: &(dyn RequestView + Sync),
        clock: &(dyn Clock + Sync),
        providers: &mut (dyn ProviderHost + Send),
        identity: Identity<'_>,
    ) -> RequestOutcome<'p> {
        self.run_inner(request, clock, providers, Some(identity))
            .await
    }

    async fn run_inner(
        &self,
        request: &(dyn RequestView + Sync),
        clock: &(dyn Clock + Sync),
        providers: &mut (dyn ProviderHost + Send),
        identity: Option<Identity<'_>>,
    ) -> RequestOutcome<'p> {
        if !is_page_request(request) {
            return RequestOutcome {
                decision: None,
                forward: ForwardEdits {
                    // No decision, so `store-on-device` is not known to be held.
                    strip_edge_cookie: true,
                    decision: None,
                },
                response: ResponseEdits::default(),
            };
        }
        self.outcome(self.decide(request, clock, providers, identity, None).await)
    }

    /// Runs the pipeline for a request to one of Gatehouse's own APIs (the auction endpoint),
    /// whatever [`is_page_request`] says: the same decision as a page load (consent, geo,
    /// permissions, device, Edge Cookie), so an API never decides differently from the page.
    /// Apply `outcome.response` to the API's response like a page's (it may set the Edge
    /// Cookie); `outcome.forward` is for proxied requests and does not apply.
    pub fn run_api(
        &self,
        request: &(dyn RequestView + Sync),
        clock: &(dyn Clock + Sync),
        providers: &mut (dyn ProviderHost + Send),
    ) -> RequestOutcome<'p> {
        self.outcome(block_on(self.decide(request, clock, providers, None, None)))
    }

    /// Runs the pipeline for `POST /_ts/api/v1/ec/resolve`: a client-side Edge Cookie provider's
    /// page script posts `proposed`, a value computed in the browser. The request is decided
    /// exactly as a page load ([`PagePipeline::run_with_identity`] when `identity` is given,
    /// [`PagePipeline::run`] otherwise): the same consent (including the stored-consent fallback
    /// and withdrawal), geo, permissions, device and bot gates, and the same store lifecycle. The
    /// one difference: when the request carries no Edge Cookie, the provider is called with
    /// `current = proposed` (when `proposed` is a bounded RFC 6265 cookie value; otherwise with
    /// `none`), so it answers that value to accept it, `none` to refuse it. An accepted value is
    /// [`EdgeCookieDecision::Set`]: stored add-only like a minted one before it is set. A
    /// request that carries an Edge Cookie is decided as a page load first, so a browser keeps
    /// its identity; only when the provider refuses the carried cookie is it called a second
    /// time, with `proposed` (the one case where a provider is called twice for one request).
    ///
    /// Store calls are awaited, as in [`PagePipeline::run_with_identity`].
    pub async fn run_resolve(
        &self,
        request: &(dyn RequestView + Sync),
        clock: &(dyn Clock + Sync),
        providers: &mut (dyn ProviderHost + Send),
        identity: Option<Identity<'_>>,
        proposed: &str,
    ) -> RequestOutcome<'p> {
        let proposed = is_cookie_value(proposed).then_some(proposed);
        self.outcome(
            self.decide(request, clock, providers, identity, proposed)
                .await,
        )
    }

    fn outcome(&self, decision: PageDecision<'p>) -> RequestOutcome<'p> {
        let forward = ForwardEdits {
            strip_edge_cookie: !decision.permissions.contains(self.store_on_device)
                || decision.edge_cookie == EdgeCookieDecision::Withdrawn,
            decision: Some(decision_header(&decision.rule, decision.permissions)),
        };
        let response = ResponseEdits {
            set_cookie: match &decision.edge_cookie {
                EdgeCookieDecision::Set(value) => Some(set_cookie_header(
                    &self.cookie.name,
                    value,
                    self.cookie.domain.as_deref(),
                    self.cookie.max_age_secs,
                )),
                EdgeCookieDecision::Withdrawn => Some(expire_cookie_header(
                    &self.cookie.name,
                    self.cookie.domain.as_deref(),
                )),
                EdgeCookieDecision::NotConfigured
                | EdgeCookieDecision::NotPermitted
                | EdgeCookieDecision::Bot
                | EdgeCookieDecision::Keep(_)
                | EdgeCookieDecision::NoneFromProvider
                | EdgeCookieDecision::Failed
                | EdgeCookieDecision::StoreUnavailable => None,
            },
            headers: decision.provider_headers.clone(),
        };
        RequestOutcome {
            decision: Some(decision),
            forward,
            response,
        }
    }

    /// Applies a request's [`ForwardEdits`] (`outcome.forward`) to the headers of the request
    /// the host sends to the origin: removes any client-sent `gatehouse-decision`, removes the
    /// Edge Cookie from `Cookie` when asked, adds Gatehouse's `gatehouse-decision`.
    pub fn edit_forwarded_request(&self, edits: &ForwardEdits, headers: &mut dyn EditableHeaders) {
        edits::edit_request(edits, &self.cookie.name, headers);
    }

    /// Applies a request's [`ResponseEdits`] (`outcome.response`) to the origin's response
    /// headers: drops the origin's `Set-Cookie` for the Edge Cookie name, adds the Edge Cookie
    /// and provider headers, and makes a response carrying either `private` for every cache.
    /// Call it on every proxied response, page or not.
    pub fn edit_response(&self, edits: &ResponseEdits, headers: &mut dyn EditableHeaders) {
        edits::edit_response(edits, &self.cookie.name, headers);
    }

    async fn decide(
        &self,
        request: &(dyn RequestView + Sync),
        clock: &(dyn Clock + Sync),
        providers: &mut (dyn ProviderHost + Send),
        identity: Option<Identity<'_>>,
        proposed: Option<&str>,
    ) -> PageDecision<'p> {
        let mut gated = Vec::new();
        let mut failures = Vec::new();
        let now = clock.now_unix_seconds();
        let current = self.current_edge_cookie(request);
        let key = current.as_deref().map(identity_key);
        let mut identity_outcome = IdentityOutcome::NotUsed;

        let mut consent = self.consent_context(request, clock);
        let own_signals = !has_no_signals(consent.raw());
        let mut consent_from_store = false;
        // The cookie's entry as read for the fallback, reused by the keep step.
        let mut prefetched = None;
        if let (Some(identity), Some(key), false) = (&identity, &key, own_signals) {
            match identity.store.get(key).await {
                Ok(read) => {
                    match read.as_ref().map(|v| IdentityRecord::decode(&v.value)) {
                        Some(Ok(IdentityRecord::Live(live))) => {
                            if let Some(stored) = live.consent {
                                let restored = ConsentContext::from_raw(
                                    &self.consent,
                                    RawSignals::from(&stored.signals),
                                    JurisdictionFacts::default(),
                                    now,
                                );
                                // Never across a withdrawal, even one stored by an older version.
                                if !restored.is_explicit_withdrawal() {
                                    consent = restored;
                                    consent_from_store = true;
                                }
                            }
                        }
                        // A tombstone has no consent; an absent record has none either.
                        Some(Ok(IdentityRecord::Tombstone(_))) | None => {}
                        // Fail closed: decided on the request's own (absent) signals.
                        Some(Err(error)) => {
                            identity_outcome = IdentityError::Record(error).into_outcome();
                        }
                    }
                    prefetched = Some(read);
                }
                Err(error) => identity_outcome = IdentityError::Store(error).into_outcome(),
            }
        }
        let signals = consent.signals();

        // Geo: gated against the default-country baseline plus the request's signals.
        let geo = match gate(providers, ProviderKind::Geo, request, |required| {
            self.policy
                .match_jurisdiction(None, None, &self.default_country)
                .resolve(&signals)
                .contains_all(required)
        }) {
            Gate::NotConfigured => GeoOutcome::NotConfigured,
            Gate::Refused => {
                gated.push(ProviderKind::Geo);
                GeoOutcome::Gated
            }
            Gate::Permitted(evidence) => match providers.locate(&evidence) {
                Ok(location) => GeoOutcome::Answered(location),
                Err(failure) => {
                    failures.push((ProviderKind::Geo, failure));
                    GeoOutcome::Failed
                }
            },
        };
        let rule = match &geo {
            GeoOutcome::Failed => self.policy.match_geo_failure(),
            GeoOutcome::Answered(location) => self.policy.match_jurisdiction(
                location.country.as_deref(),
                location.region.as_deref(),
                &self.default_country,
            ),
            GeoOutcome::NotConfigured | GeoOutcome::Gated => {
                self.policy
                    .match_jurisdiction(None, None, &self.default_country)
            }
        };
        let permissions = rule.resolve(&signals);
        let consent = consent.with_jurisdiction(
            &self.consent,
            JurisdictionFacts {
                gdpr_applies: rule.gdpr_applies(),
                us_privacy_applies: rule.us_privacy_applies(),
            },
        );

        let mut device = Classification::default();
        match gate(providers, ProviderKind::Device, request, |required| {
            permissions.contains_all(required)
        }) {
            Gate::NotConfigured => {}
            Gate::Refused => gated.push(ProviderKind::Device),
            Gate::Permitted(evidence) => match providers.classify(&evidence) {
                Ok(found) => device = found,
                Err(failure) => failures.push((ProviderKind::Device, failure)),
            },
        }

        let mut provider_headers = Vec::new();
        let mut dropped_headers = Vec::new();
        let store_on_device = permissions.contains(self.store_on_device);
        let is_bot = device.class == DeviceClass::Bot;
        let withdrawal = own_signals && consent.is_explicit_withdrawal();
        let edge_cookie = match (&identity, &key) {
            (Some(identity), Some(key)) if withdrawal => {
                identity_outcome = match lifecycle::withdraw(*identity, key, now).await {
                    Ok(()) => IdentityOutcome::Withdrawn,
                    Err(error) => error.into_outcome(),
                };
                // The browser's copy goes even when the store failed.
                EdgeCookieDecision::Withdrawn
            }
            // Without a store there is nothing to tombstone, but the browser's copy still goes:
            // an explicit withdrawal is never answered by leaving the identifier in place.
            (None, Some(_)) if withdrawal && providers.spec(ProviderKind::EdgeCookie).is_some() => {
                EdgeCookieDecision::Withdrawn
            }
            _ => match gate(providers, ProviderKind::EdgeCookie, request, |required| {
                store_on_device && permissions.contains_all(required)
            }) {
                Gate::NotConfigured => EdgeCookieDecision::NotConfigured,
                Gate::Refused => {
                    gated.push(ProviderKind::EdgeCookie);
                    EdgeCookieDecision::NotPermitted
                }
                Gate::Permitted(_) if is_bot => EdgeCookieDecision::Bot,
                Gate::Permitted(evidence) => {
                    // The cookie the request carries comes first: a browser keeps its identity.
                    let mut answer = providers
                        .generate_edge_cookie(&evidence, current.as_deref().or(proposed))
                        .and_then(|output| self.check_edge_cookie_output(output));
                    // Resolve only: a carried cookie the provider refuses (another provider's,
                    // say) is replaced by the browser-computed value, if the provider accepts it.
                    if let (Some(_), Some(proposed), Ok((None, ..))) =
                        (current.as_deref(), proposed, &answer)
                    {
                        answer = providers
                            .generate_edge_cookie(&evidence, Some(proposed))
                            .and_then(|output| self.check_edge_cookie_output(output));
                    }
                    match answer {
                        Ok((id, kept, dropped)) => {
                            provider_headers = kept;
                            dropped_headers = dropped;
                            match id {
                                None => EdgeCookieDecision::NoneFromProvider,
                                Some(id) if current.as_deref() == Some(id.as_str()) => {
                                    EdgeCookieDecision::Keep(id)
                                }
                                Some(id) => EdgeCookieDecision::Set(id),
                            }
                        }
                        Err(failure) => {
                            failures.push((ProviderKind::EdgeCookie, failure));
                            EdgeCookieDecision::Failed
                        }
                    }
                }
            },
        };

        // Store the identity behind a kept or minted value.
        if let (Some(identity), EdgeCookieDecision::Keep(value) | EdgeCookieDecision::Set(value)) =
            (identity, &edge_cookie)
        {
            let minted = matches!(edge_cookie, EdgeCookieDecision::Set(_));
            let own_consent = own_signals.then(|| StoredConsent::from_context(&consent, now));
            let fresh = LiveIdentity {
                created: now,
                consent: own_consent.clone(),
                country: geo.location().and_then(|l| l.country.clone()),
                region: geo.location().and_then(|l| l.region.clone()),
                device: device.class,
                partners: Default::default(),
            };
            let key = identity_key(value);
            identity_outcome = match lifecycle::ensure_live(
                identity,
                lifecycle::EnsureLive {
                    key: &key,
                    fresh: &fresh,
                    own_consent: own_consent.as_ref(),
                    max_age_secs: self.cookie.max_age_secs,
                    now,
                    expect_absent: minted,
                    prefetched: if current.as_deref() == Some(value.as_str()) {
                        prefetched
                    } else {
                        None
                    },
                },
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(error) => error.into_outcome(),
            };
        }
        let edge_cookie = match (edge_cookie, &identity_outcome) {
            // A value the store did not record is not set, and neither is anything derived
            // from it; a kept value stays with the browser either way.
            (EdgeCookieDecision::Set(_), IdentityOutcome::Failed(_)) => {
                provider_headers.clear();
                EdgeCookieDecision::StoreUnavailable
            }
            (decision, _) => decision,
        };

        PageDecision {
            geo,
            rule,
            permissions,
            device,
            edge_cookie,
            provider_headers,
            dropped_headers,
            gated,
            failures,
            consent,
            consent_from_store,
            identity: identity_outcome,
        }
    }

    /// Decodes the request's consent signals once, with neutral jurisdiction facts (the signals
    /// do not depend on them; [`ConsentContext::with_jurisdiction`] attaches the matched ones).
    fn consent_context(&self, request: &dyn RequestView, clock: &dyn Clock) -> ConsentContext {
        let cookies = request.header_values("cookie");
        let joined;
        let cookie_header = match cookies.as_slice() {
            [] => None,
            [one] => Some(*one),
            many => {
                joined = many.join("; ");
                Some(joined.as_str())
            }
        };
        ConsentContext::build(
            &self.consent,
            &ConsentInput {
                cookie_header,
                headers: &ViewHeaders(request),
                jurisdiction: JurisdictionFacts::default(),
                now_unix_seconds: clock.now_unix_seconds(),
            },
        )
    }

    /// The visitor's Edge Cookie, when it is a well-formed value (anything else is treated as
    /// absent, so a provider never receives attacker-shaped input as `current`).
    fn current_edge_cookie(&self, request: &dyn RequestView) -> Option<String> {
        request
            .header_values("cookie")
            .into_iter()
            .find_map(|line| find_cookie(line, &self.cookie.name))
            .filter(|value| is_cookie_value(value))
            .map(str::to_owned)
    }

    /// Refuses an Edge Cookie answer that breaks the contract (an id that is not a bounded
    /// RFC 6265 cookie value, `set-cookie`, headers over the limits) and filters its headers.
    fn check_edge_cookie_output(&self, output: EcOutput) -> Result<CheckedOutput, ProviderFailure> {
        if let Some(id) = output.id.as_deref()
            && !is_cookie_value(id)
        {
            return Err(ProviderFailure::InvalidOutput(format!(
                "edge cookie value must be 1..={MAX_COOKIE_VALUE_LEN} bytes of rfc 6265 cookie-octet"
            )));
        }
        let (kept, dropped) = provider_headers::filter(
            output.headers,
            &self.cookie.allowed_headers,
            self.cookie.header_limits,
        )?;
        Ok((output.id, kept, dropped))
    }
}

/// An Edge Cookie answer after checking: the id, the kept headers and the dropped ones.
type CheckedOutput = (Option<String>, Vec<(String, String)>, Vec<DroppedHeader>);

/// Whether a configured provider may run, with its evidence when it may.
enum Gate {
    NotConfigured,
    Refused,
    Permitted(Evidence),
}

fn gate(
    providers: &dyn ProviderHost,
    kind: ProviderKind,
    request: &dyn RequestView,
    permitted: impl FnOnce(PermissionSet) -> bool,
) -> Gate {
    match providers.spec(kind) {
        None => Gate::NotConfigured,
        Some(spec) if permitted(spec.required) => {
            Gate::Permitted(Evidence::collect(&spec.reads, request))
        }
        Some(_) => Gate::Refused,
    }
}

/// [`HeaderLookup`] over a [`RequestView`]: the first value of a header.
struct ViewHeaders<'a>(&'a dyn RequestView);

impl HeaderLookup for ViewHeaders<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        // `RequestView` takes lowercase names; configured consent header names may not be.
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.0.header_values(&name.to_ascii_lowercase())
        } else {
            self.0.header_values(name)
        }
    }
}

/// What the geo step did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeoOutcome {
    /// No geo provider is configured: `geo.default_country` applies.
    NotConfigured,
    /// The geo provider's permissions are not held under the default-country baseline: it was
    /// not called and `geo.default_country` applies.
    Gated,
    /// The provider answered (possibly "country unknown", which uses `geo.default_country`).
    Answered(Location),
    /// The provider failed: the fail-closed jurisdiction ([`Policy::match_geo_failure`]) applies.
    Failed,
}

impl GeoOutcome {
    /// The location the provider returned, if it answered.
    #[must_use]
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Answered(location) => Some(location),
            Self::NotConfigured | Self::Gated | Self::Failed => None,
        }
    }
}

/// What happened to the Edge Cookie on this request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EdgeCookieDecision {
    /// No Edge Cookie provider is configured.
    NotConfigured,
    /// `store-on-device` or the provider's own requirements are not held; the provider was not run.
    NotPermitted,
    /// The device provider classified the client as a bot; the provider was not run.
    Bot,
    /// The request's existing cookie is valid and kept unchanged.
    Keep(String),
    /// A new value is to be set.
    Set(String),
    /// The provider chose to set nothing.
    NoneFromProvider,
    /// The provider failed or its answer was refused; nothing is set.
    Failed,
    /// The provider minted a value but the identity store could not record it; nothing is set
    /// ([`PagePipeline::run_with_identity`] only).
    StoreUnavailable,
    /// The visitor withdrew explicitly with a cookie present: the cookie is expired, and with an
    /// identity store ([`PagePipeline::run_with_identity`]) the identity is tombstoned.
    Withdrawn,
}

/// Everything decided for one page request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PageDecision<'p> {
    /// What the geo step did.
    pub geo: GeoOutcome,
    /// The jurisdiction the request resolved against ([`crate::policy::MatchKind::GeoFailed`]
    /// when geo failed).
    pub rule: MatchedRule<'p>,
    /// The permissions held.
    pub permissions: PermissionSet,
    /// The device classification (neutral when no provider ran or it failed).
    pub device: Classification,
    /// The Edge Cookie outcome.
    pub edge_cookie: EdgeCookieDecision,
    /// Provider response headers that passed the allowlist and the limits.
    pub provider_headers: Vec<(String, String)>,
    /// Provider response headers that were dropped; the host counts and logs them.
    pub dropped_headers: Vec<DroppedHeader>,
    /// Providers that were configured but not run because permissions were missing.
    pub gated: Vec<ProviderKind>,
    /// Providers that failed, with the reason; the host logs and counts these.
    pub failures: Vec<(ProviderKind, ProviderFailure)>,
    /// The request's consent state with the matched jurisdiction's facts: for downstream
    /// partners (`gdpr_applies`, US Privacy, TCF), persistence (`fingerprint`) and the host's log
    /// of ignored signals (`warnings`).
    pub consent: ConsentContext,
    /// The request carried no consent signal and `consent` is the one stored with its Edge
    /// Cookie's record ([`PagePipeline::run_with_identity`] only).
    pub consent_from_store: bool,
    /// What the lifecycle did with the identity store ([`IdentityOutcome::NotUsed`] from
    /// [`PagePipeline::run`]).
    pub identity: IdentityOutcome,
}

impl fmt::Display for PageDecision<'_> {
    /// One log line, without any consent string or identifier.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule `{}` ({}, group `{}`), {} of {} permissions held, device {:?}, edge cookie {}",
            self.rule.rule_key(),
            self.rule.match_kind().label(),
            self.rule.group_name(),
            self.permissions.len(),
            self.rule.policy().permission_count(),
            self.device.class,
            match self.edge_cookie {
                EdgeCookieDecision::NotConfigured => "not configured",
                EdgeCookieDecision::NotPermitted => "not permitted",
                EdgeCookieDecision::Bot => "not for a bot",
                EdgeCookieDecision::Keep(_) => "kept",
                EdgeCookieDecision::Set(_) => "set",
                EdgeCookieDecision::NoneFromProvider => "none from provider",
                EdgeCookieDecision::Failed => "failed",
                EdgeCookieDecision::StoreUnavailable => "not set: store unavailable",
                EdgeCookieDecision::Withdrawn => "withdrawn",
            }
        )
    }
}

/// The result of [`PagePipeline::run`] for one request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestOutcome<'p> {
    /// The decision, for page requests; `None` for requests that are not page loads.
    pub decision: Option<PageDecision<'p>>,
    /// Edits to the request forwarded to the origin.
    pub forward: ForwardEdits,
    /// Edits to the response.
    pub response: ResponseEdits,
}
