//! The auction: the page's ad units in, one OpenRTB 2.6 `BidRequest` per configured bidder out,
//! and the bidders' answers back in as one winner per ad unit. No I/O: the host sends the
//! requests (in parallel, each bounded by its `tmax`) and hands back what it observed.
//!
//! ```text
//! host: body ──▶ Auction::parse_input ──▶ AuctionInput          (400 problem+json on error)
//!       PagePipeline::run_api ──▶ PageDecision ──▶ AuctionContext::from_decision
//!       Auction::build_requests(input, ctx) ──▶ [OutboundBidRequest]  ──▶ send each, bounded by tmax
//!       Auction::choose_winners(input, ctx ids, [BidderOutcome]) ──▶ AuctionResult ──▶ page (JSON)
//! ```
//!
//! What this module decides, and must never get wrong (see `docs/auction.md`):
//! - **Regulatory context goes to every partner**, whatever Gatehouse itself may do: `regs.gdpr`
//!   from the matched policy group (absent when the jurisdiction is unknown, never a guessed
//!   `0`), `regs.gpp`/`gpp_sid`, `regs.us_privacy` (received, or synthesised from GPC where the
//!   group says a US opt-out regime applies), `user.consent`, the same values in the OpenRTB 2.5
//!   `ext` locations, and the Additional Consent string. Strings are forwarded verbatim, and only
//!   when they decoded; an expired TCF record is forwarded nowhere (expired consent is no
//!   consent).
//! - **Identifiers are gated**: the Edge Cookie and the allowed client EIDs go into `user.eids`
//!   only when the request's permissions hold both `store-on-device` and
//!   `select-personalised-ads`, and only to partners with `bidstream_enabled`.
//! - Without `select-personalised-ads`, `device.ip`/`ipv6` are truncated (/24, /48).
//! - The `Cookie` header a partner receives never holds the Edge Cookie or the publisher's other
//!   cookies (only its `forward_cookies`); consent cookies follow `consent_forwarding`.
//! - Ids (`id`, `source.tid`) come from the host: this crate has no randomness.

mod build;
mod config;
mod input;
mod winners;

use std::net::IpAddr;

pub use build::{GdprApplies, truncate_ip};
pub use config::{
    AuctionConfig, AuctionConfigError, BidderConfig, ConsentForwarding, DEFAULT_TMAX_MS,
    MAX_BIDDERS, MAX_TMAX_MS,
};
pub use input::{
    AdUnit, AuctionInput, AuctionInputError, MAX_AD_UNITS, MAX_CODE_LEN, MAX_DIMENSION,
    MAX_EID_LEN, MAX_EIDS, MAX_FLOOR, MAX_INPUT_BYTES, MAX_SIZES, MAX_URL_LEN, MediaType,
};
pub use winners::{
    AuctionResult, BidderError, BidderOutcome, BidderReport, BidderStatus, MAX_BID_PRICE,
    RejectedBid, Winner,
};

use crate::consent::{ConsentConfig, ConsentContext, CookieNames};
use crate::openrtb::BidRequest;
use crate::pipeline::{EdgeCookieDecision, PageDecision};
use crate::policy::{PermissionId, PermissionSet, Policy};
use crate::sync::Partners;

use build::{ForwardedConsent, Shared};
pub(crate) use config::is_bidder_name as is_partner_token;
use config::{check_cookie_name, check_domain, escaped, is_bidder_name, is_http_url};

/// The auction of one deployment: validated `[auction]` settings, built once at startup.
#[derive(Clone, Debug)]
pub struct Auction {
    config: AuctionConfig,
    cookie_names: CookieNames,
    store_on_device: PermissionId,
    personalised_ads: PermissionId,
}

/// The request facts an auction needs, besides the page's input.
#[derive(Clone, Copy, Debug)]
pub struct AuctionContext<'a> {
    /// `id` of every bid request: unique per auction, from the host's randomness.
    pub request_id: &'a str,
    /// `source.tid`: the transaction id, from the host's randomness.
    pub transaction_id: &'a str,
    /// The request's consent state, with the matched jurisdiction's facts.
    pub consent: &'a ConsentContext,
    /// Whether GDPR applies (`regs.gdpr`).
    pub gdpr: GdprApplies,
    /// The permissions the request holds.
    pub permissions: PermissionSet,
    /// The visitor's country (ISO 3166-1 alpha-2) from geo, if it answered one.
    pub country: Option<&'a str>,
    /// The visitor's Edge Cookie (kept or newly set), if any.
    pub edge_cookie: Option<&'a str>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The trusted client address.
    pub client_ip: Option<IpAddr>,
    /// The visitor's `Cookie` header (several lines joined with `; `).
    pub cookie_header: Option<&'a str>,
}

impl<'a> AuctionContext<'a> {
    /// The context of a request the page pipeline decided ([`crate::pipeline::PagePipeline::run_api`]).
    #[must_use]
    pub fn from_decision(
        decision: &'a PageDecision<'_>,
        request_id: &'a str,
        transaction_id: &'a str,
        user_agent: Option<&'a str>,
        client_ip: Option<IpAddr>,
        cookie_header: Option<&'a str>,
    ) -> Self {
        Self {
            request_id,
            transaction_id,
            consent: &decision.consent,
            gdpr: GdprApplies::from_rule(&decision.rule),
            permissions: decision.permissions,
            country: decision.geo.location().and_then(|l| l.country.as_deref()),
            edge_cookie: match &decision.edge_cookie {
                EdgeCookieDecision::Keep(id) | EdgeCookieDecision::Set(id) => Some(id),
                EdgeCookieDecision::NotConfigured
                | EdgeCookieDecision::NotPermitted
                | EdgeCookieDecision::Bot
                | EdgeCookieDecision::NoneFromProvider
                | EdgeCookieDecision::Failed
                | EdgeCookieDecision::Withdrawn
                | EdgeCookieDecision::StoreUnavailable => None,
            },
            user_agent,
            client_ip,
            cookie_header,
        }
    }
}

/// One bid request, ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundBidRequest {
    /// The bidder's configured `name`.
    pub bidder: String,
    /// The endpoint.
    pub url: String,
    /// How long to wait for the answer (the request's `tmax`), in milliseconds.
    pub timeout_ms: u64,
    /// The body.
    pub body: BidRequest,
    /// The `Cookie` header, if any cookie is forwarded.
    pub cookie: Option<String>,
    /// Whether to send `Sec-GPC: 1` (the visitor sent it; every partner receives it).
    pub sec_gpc: bool,
}

impl OutboundBidRequest {
    /// The body as JSON bytes.
    #[must_use]
    pub fn body_json(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail (string keys, finite floats).
        serde_json::to_vec(&self.body).unwrap_or_default()
    }

    /// The request headers to send: `content-type`, `x-openrtb-version`, and `cookie`/`sec-gpc`
    /// when present.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("x-openrtb-version", "2.6".to_owned()),
        ];
        if let Some(cookie) = &self.cookie {
            headers.push(("cookie", cookie.clone()));
        }
        if self.sec_gpc {
            headers.push(("sec-gpc", "1".to_owned()));
        }
        headers
    }
}

impl Auction {
    /// Validates `[auction]` against the policy, the consent cookie names and the Edge Cookie
    /// name.
    ///
    /// # Errors
    /// [`AuctionConfigError`], naming the key: no or too many bidders, a currency that is not an
    /// ISO 4217 code, a timeout out of range, a bidder name that is invalid or repeated, a url
    /// that is not `http(s)`, a `forward_cookies` entry that is the Edge Cookie or a consent
    /// cookie, an EID source that is not a domain; or a policy without `store-on-device` or
    /// `select-personalised-ads`.
    pub fn new(
        policy: &Policy,
        config: AuctionConfig,
        consent: &ConsentConfig,
        edge_cookie_name: &str,
    ) -> Result<Self, AuctionConfigError> {
        Self::with_partners(
            policy,
            config,
            consent,
            edge_cookie_name,
            &Partners::default(),
        )
    }

    /// [`Auction::new`] for a deployment with `[[partners]]`: a bidder with `partner = "<id>"`
    /// takes that partner's `bidstream_enabled` and `consent_forwarding`.
    ///
    /// # Errors
    /// As [`Auction::new`], and [`AuctionConfigError::UnknownPartner`] when a bidder's
    /// `partner` names no configured partner.
    pub fn with_partners(
        policy: &Policy,
        mut config: AuctionConfig,
        consent: &ConsentConfig,
        edge_cookie_name: &str,
        partners: &Partners,
    ) -> Result<Self, AuctionConfigError> {
        for (i, bidder) in config.bidders.iter_mut().enumerate() {
            if let Some(id) = &bidder.partner {
                let partner =
                    partners
                        .get(id)
                        .ok_or_else(|| AuctionConfigError::UnknownPartner {
                            key: format!("auction.bidders[{i}].partner"),
                            id: escaped(id),
                        })?;
                bidder.bidstream_enabled = partner.bidstream_enabled;
                bidder.consent_forwarding = partner.consent_forwarding;
            }
        }
        let permission = |name: &'static str| {
            policy
                .permission_id(name)
                .ok_or_else(|| AuctionConfigError::MissingPermission {
                    policy: policy.source().to_owned(),
                    permission: name,
                })
        };
        let store_on_device = permission("store-on-device")?;
        let personalised_ads = permission("select-personalised-ads")?;
        if config.bidders.is_empty() || config.bidders.len() > MAX_BIDDERS {
            return Err(AuctionConfigError::BidderCount {
                count: config.bidders.len(),
            });
        }
        if config.currency.len() != 3 || !config.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(AuctionConfigError::InvalidCurrency {
                value: escaped(&config.currency),
            });
        }
        if !(1..=MAX_TMAX_MS).contains(&config.tmax_ms) {
            return Err(AuctionConfigError::InvalidTimeout {
                key: "auction.tmax_ms".to_owned(),
                value: config.tmax_ms,
                max: MAX_TMAX_MS,
            });
        }
        if let Some(source) = &config.edge_cookie_eid_source {
            check_domain("auction.edge_cookie_eid_source", source)?;
        }
        for (i, source) in config.allowed_eid_sources.iter_mut().enumerate() {
            check_domain(&format!("auction.allowed_eid_sources[{i}]"), source)?;
            source.make_ascii_lowercase();
        }
        let names = &consent.cookie_names;
        let consent_cookies: Vec<&str> = [
            names.tc_string.as_str(),
            names.gpp.as_str(),
            names.gpp_sid.as_str(),
            names.additional_consent.as_str(),
        ]
        .into_iter()
        .chain(names.us_privacy.iter().map(String::as_str))
        .collect();
        for (i, bidder) in config.bidders.iter().enumerate() {
            let key = |field: &str| format!("auction.bidders[{i}].{field}");
            if !is_bidder_name(&bidder.name) {
                return Err(AuctionConfigError::InvalidBidderName {
                    key: key("name"),
                    value: escaped(&bidder.name),
                });
            }
            if config.bidders[..i].iter().any(|b| b.name == bidder.name) {
                return Err(AuctionConfigError::DuplicateBidder {
                    key: key("name"),
                    name: bidder.name.clone(),
                });
            }
            if !is_http_url(&bidder.url) {
                return Err(AuctionConfigError::InvalidUrl {
                    key: key("url"),
                    value: escaped(&bidder.url),
                });
            }
            if let Some(timeout) = bidder.timeout_ms
                && !(1..=config.tmax_ms).contains(&timeout)
            {
                return Err(AuctionConfigError::InvalidTimeout {
                    key: key("timeout_ms"),
                    value: timeout,
                    max: config.tmax_ms,
                });
            }
            for (j, name) in bidder.forward_cookies.iter().enumerate() {
                check_cookie_name(
                    &format!("auction.bidders[{i}].forward_cookies[{j}]"),
                    name,
                    edge_cookie_name,
                    &consent_cookies,
                )?;
            }
        }
        Ok(Self {
            config,
            cookie_names: consent.cookie_names.clone(),
            store_on_device,
            personalised_ads,
        })
    }

    /// The validated configuration.
    #[must_use]
    pub fn config(&self) -> &AuctionConfig {
        &self.config
    }

    /// Parses and validates the page's request body.
    ///
    /// # Errors
    /// [`AuctionInputError`], naming the field.
    pub fn parse_input(&self, body: &[u8]) -> Result<AuctionInput, AuctionInputError> {
        AuctionInput::parse(body)
    }

    /// Whether the request's permissions allow identifiers in bid requests.
    #[must_use]
    pub fn identifiers_permitted(&self, permissions: PermissionSet) -> bool {
        permissions.contains(self.store_on_device) && permissions.contains(self.personalised_ads)
    }

    /// Builds one bid request per configured bidder, in configuration order.
    #[must_use]
    pub fn build_requests(
        &self,
        input: &AuctionInput,
        ctx: &AuctionContext<'_>,
    ) -> Vec<OutboundBidRequest> {
        let personalised = ctx.permissions.contains(self.personalised_ads);
        let mut eids = Vec::new();
        if self.identifiers_permitted(ctx.permissions) {
            if let Some(id) = ctx.edge_cookie {
                let source = self
                    .config
                    .edge_cookie_eid_source
                    .as_deref()
                    .unwrap_or(&input.domain);
                eids.push(build::edge_cookie_eid(source, id));
            }
            // Allowed sources only; the first EID per source, and never the Edge Cookie's
            // source, so a page cannot replace or shadow the Edge Cookie.
            for eid in &input.eids {
                if self.config.allowed_eid_sources.contains(&eid.source)
                    && !eids.iter().any(|kept| kept.source == eid.source)
                {
                    eids.push(eid.clone());
                }
            }
        }
        let shared = Shared {
            request_id: ctx.request_id,
            transaction_id: ctx.transaction_id,
            currency: &self.config.currency,
            tmax_ms: self.config.tmax_ms,
            gdpr: ctx.gdpr,
            consent: ForwardedConsent::new(ctx.consent),
            device: build::device(ctx.user_agent, ctx.client_ip, ctx.country, personalised),
            eids,
        };
        self.config
            .bidders
            .iter()
            .map(|bidder| {
                let timeout_ms = bidder.timeout_ms.unwrap_or(shared.tmax_ms);
                OutboundBidRequest {
                    bidder: bidder.name.clone(),
                    url: bidder.url.clone(),
                    timeout_ms,
                    body: build::bid_request(&shared, input, bidder, timeout_ms),
                    cookie: build::cookie_header(
                        ctx.cookie_header,
                        bidder,
                        &self.cookie_names,
                        &shared.consent,
                    ),
                    sec_gpc: ctx.consent.raw().gpc,
                }
            })
            .collect()
    }

    /// Reads every bidder's answer and picks one winner per ad unit. `outcomes[i]` is what the
    /// host observed for the `i`-th request of [`Auction::build_requests`]; a missing entry counts
    /// as timed out.
    #[must_use]
    pub fn choose_winners(
        &self,
        input: &AuctionInput,
        request_id: &str,
        outcomes: &[BidderOutcome<'_>],
    ) -> AuctionResult {
        let bidders = &self.config.bidders;
        let mut all_bids = Vec::with_capacity(bidders.len());
        let mut reports = Vec::with_capacity(bidders.len());
        let mut errors = Vec::new();
        let (mut timed_out, mut failed) = (Vec::new(), Vec::new());
        for (i, bidder) in bidders.iter().enumerate() {
            let outcome = outcomes.get(i).copied().unwrap_or(BidderOutcome::TimedOut);
            let answer = winners::read_answer(
                &bidder.name,
                request_id,
                &self.config.currency,
                input,
                outcome,
            );
            match answer {
                Ok(winners::Answer { bids, rejected }) => {
                    reports.push(BidderReport {
                        bidder: bidder.name.clone(),
                        status: if bids.is_empty() {
                            BidderStatus::NoBid
                        } else {
                            BidderStatus::Bid
                        },
                        error: None,
                        bids: bids.len(),
                        rejected,
                    });
                    all_bids.push(bids);
                }
                Err(error) => {
                    let status = if matches!(error, BidderError::TimedOut { .. }) {
                        timed_out.push(bidder.name.clone());
                        BidderStatus::TimedOut
                    } else {
                        failed.push(bidder.name.clone());
                        BidderStatus::Failed
                    };
                    reports.push(BidderReport {
                        bidder: bidder.name.clone(),
                        status,
                        error: Some(error.label()),
                        bids: 0,
                        rejected: Vec::new(),
                    });
                    errors.push(error);
                    all_bids.push(Vec::new());
                }
            }
        }
        let names: Vec<&str> = bidders.iter().map(|b| b.name.as_str()).collect();
        let (winners, no_bid) = winners::choose(input, &names, &all_bids);
        AuctionResult {
            id: request_id.to_owned(),
            currency: self.config.currency.clone(),
            winners,
            no_bid,
            timed_out,
            failed,
            bidders: reports,
            errors,
        }
    }
}
