//! Reading bidder answers and choosing one winner per ad unit.
//!
//! A bidder that timed out, failed in transport, answered a non-200 status, sent a body that is
//! not a `BidResponse`, echoed another request id or bid in another currency is dropped as a
//! whole; the others still count. Inside a valid response, each bid is checked on its own: an
//! unknown `impid`, a price that is not positive or is below the ad unit's floor, a size the ad
//! unit did not ask for, or no creative (neither `adm` nor `nurl`) rejects that bid only.
//!
//! The winner of an ad unit is the highest price; ties go to the bidder configured first, then
//! to the bid that came first in its response, so the same answers always give the same winners.

use serde::Serialize;

use crate::openrtb::{Bid, BidResponse, BidResponseError};

use super::input::AuctionInput;

/// The highest CPM accepted from a bidder (the same bound as a page's floor).
pub const MAX_BID_PRICE: f64 = super::input::MAX_FLOOR;

/// What the host observed for one bidder's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BidderOutcome<'a> {
    /// An HTTP answer arrived within the bidder's timeout.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The body (at most [`crate::openrtb::MAX_RESPONSE_BYTES`] are parsed).
        body: &'a [u8],
    },
    /// No complete answer within the bidder's timeout.
    TimedOut,
    /// The request could not be sent or the connection failed.
    TransportFailed,
}

/// Why a bidder was dropped from the auction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BidderError {
    /// The bidder did not answer within its timeout.
    #[error("bidder `{bidder}` timed out")]
    TimedOut {
        /// The bidder.
        bidder: String,
    },
    /// The connection failed.
    #[error("bidder `{bidder}` could not be reached")]
    Transport {
        /// The bidder.
        bidder: String,
    },
    /// A status other than 200 or 204.
    #[error("bidder `{bidder}` answered http status {status}")]
    Status {
        /// The bidder.
        bidder: String,
        /// The status.
        status: u16,
    },
    /// The body is not a bid response.
    #[error("bidder `{bidder}`: {source}")]
    Response {
        /// The bidder.
        bidder: String,
        /// Why.
        #[source]
        source: BidResponseError,
    },
    /// The response's `id` is not the request's.
    #[error("bidder `{bidder}` answered another request id")]
    RequestIdMismatch {
        /// The bidder.
        bidder: String,
    },
    /// The response's currency is not the auction's.
    #[error("bidder `{bidder}` bid in `{currency}`, not the auction currency")]
    Currency {
        /// The bidder.
        bidder: String,
        /// The response's `cur` (escaped, at most 8 characters).
        currency: String,
    },
}

impl BidderError {
    /// A short stable label for the page, metrics and logs.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::TimedOut { .. } => "timed-out",
            Self::Transport { .. } => "transport",
            Self::Status { .. } => "http-status",
            Self::Response { .. } => "malformed-response",
            Self::RequestIdMismatch { .. } => "request-id-mismatch",
            Self::Currency { .. } => "currency",
        }
    }
}

/// Why one bid was not considered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectedBid {
    /// `impid` names no impression of the request.
    UnknownImp,
    /// The price is zero or negative.
    NonPositivePrice,
    /// The price is below the ad unit's floor.
    BelowFloor,
    /// The price is over [`MAX_BID_PRICE`]: no real CPM is, and one absurd bid must not win
    /// every ad unit.
    ImplausiblePrice,
    /// `w`/`h` is not one of the ad unit's sizes (or only one of them is set).
    SizeNotRequested,
    /// Neither `adm` nor `nurl`.
    NoCreative,
}

/// The winning bid of one ad unit, as the page receives it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Winner {
    /// The ad unit code.
    pub ad_unit: String,
    /// The bidder (its configured `name`).
    pub bidder: String,
    /// CPM in the auction currency.
    pub price: f64,
    /// Creative width, when the bid or the ad unit's only size says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Creative height.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The creative markup (`adm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markup: Option<String>,
    /// The creative URL (`nurl`), when the bid has no markup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The billing notice URL (`burl`), for the page to fire on render.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_url: Option<String>,
    /// `crid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creative_id: Option<String>,
    /// `dealid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deal_id: Option<String>,
    /// `adomain`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advertiser_domains: Vec<String>,
}

/// What happened with one bidder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BidderStatus {
    /// Answered with at least one valid bid.
    Bid,
    /// Answered with no valid bid (204, an empty body, or only rejected bids).
    NoBid,
    /// Did not answer in time.
    TimedOut,
    /// Dropped: transport failure, bad status or invalid response.
    Failed,
}

/// One bidder's line in the page response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BidderReport {
    /// The bidder.
    pub bidder: String,
    /// What happened.
    pub status: BidderStatus,
    /// For `failed` and `timed_out`: [`BidderError::label`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// Valid bids received.
    pub bids: usize,
    /// Bids rejected, with the reason, in response order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedBid>,
}

/// The page's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuctionResult {
    /// The auction's request id.
    pub id: String,
    /// The currency of every price.
    pub currency: String,
    /// One winner per ad unit that got a valid bid, in ad unit order.
    pub winners: Vec<Winner>,
    /// Ad units without a valid bid.
    pub no_bid: Vec<String>,
    /// Bidders that timed out.
    pub timed_out: Vec<String>,
    /// Bidders that were dropped for another reason.
    pub failed: Vec<String>,
    /// Every bidder, in configuration order.
    pub bidders: Vec<BidderReport>,
    /// The bidders' errors, for the host to log and count (not serialised to the page).
    #[serde(skip)]
    pub errors: Vec<BidderError>,
}

/// A bidder's readable answer: valid bids with their ad unit index, and rejected bids.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub bids: Vec<(usize, Bid)>,
    pub rejected: Vec<RejectedBid>,
}

/// Reads one bidder's answer: its valid bids (with the ad unit index) or why it was dropped.
pub(crate) fn read_answer(
    bidder: &str,
    request_id: &str,
    currency: &str,
    input: &AuctionInput,
    outcome: BidderOutcome<'_>,
) -> Result<Answer, BidderError> {
    let body = match outcome {
        BidderOutcome::TimedOut => {
            return Err(BidderError::TimedOut {
                bidder: bidder.to_owned(),
            });
        }
        BidderOutcome::TransportFailed => {
            return Err(BidderError::Transport {
                bidder: bidder.to_owned(),
            });
        }
        BidderOutcome::Answered { status: 204, .. } => return Ok(Answer::default()),
        BidderOutcome::Answered { status: 200, body } => body,
        BidderOutcome::Answered { status, .. } => {
            return Err(BidderError::Status {
                bidder: bidder.to_owned(),
                status,
            });
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Answer::default());
    }
    let response = BidResponse::parse(body).map_err(|source| BidderError::Response {
        bidder: bidder.to_owned(),
        source,
    })?;
    if response.id != request_id {
        return Err(BidderError::RequestIdMismatch {
            bidder: bidder.to_owned(),
        });
    }
    // OpenRTB: an absent `cur` means USD.
    let cur = response.cur.as_deref().unwrap_or("USD");
    if !cur.eq_ignore_ascii_case(currency) {
        return Err(BidderError::Currency {
            bidder: bidder.to_owned(),
            currency: cur
                .chars()
                .take(8)
                .collect::<String>()
                .escape_default()
                .to_string(),
        });
    }
    let mut valid = Vec::new();
    let mut rejected = Vec::new();
    for bid in response.seatbid.into_iter().flat_map(|s| s.bid) {
        match check_bid(input, &bid) {
            Ok(unit) => valid.push((unit, bid)),
            Err(reason) => rejected.push(reason),
        }
    }
    Ok(Answer {
        bids: valid,
        rejected,
    })
}

fn check_bid(input: &AuctionInput, bid: &Bid) -> Result<usize, RejectedBid> {
    let unit_index = bid
        .impid
        .parse::<usize>()
        .ok()
        .filter(|i| (1..=input.ad_units.len()).contains(i) && bid.impid == i.to_string())
        .ok_or(RejectedBid::UnknownImp)?
        - 1;
    let unit = &input.ad_units[unit_index];
    if bid.price.is_nan() || bid.price <= 0.0 {
        return Err(RejectedBid::NonPositivePrice);
    }
    if bid.price > MAX_BID_PRICE {
        return Err(RejectedBid::ImplausiblePrice);
    }
    if unit.floor.is_some_and(|floor| bid.price < floor) {
        return Err(RejectedBid::BelowFloor);
    }
    match (bid.w, bid.h) {
        (None, None) => {}
        (Some(w), Some(h)) if unit.sizes.iter().any(|s| s.w == w && s.h == h) => {}
        _ => return Err(RejectedBid::SizeNotRequested),
    }
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !has(&bid.adm) && !has(&bid.nurl) {
        return Err(RejectedBid::NoCreative);
    }
    Ok(unit_index)
}

/// Picks the winners from every bidder's valid bids (`bids[i]` belongs to the `i`-th bidder in
/// configuration order).
pub(crate) fn choose(
    input: &AuctionInput,
    names: &[&str],
    bids: &[Vec<(usize, Bid)>],
) -> (Vec<Winner>, Vec<String>) {
    let mut winners = Vec::new();
    let mut no_bid = Vec::new();
    for (unit_index, unit) in input.ad_units.iter().enumerate() {
        // Strictly greater replaces: on a tie the earlier bidder, then the earlier bid, stays.
        let mut best: Option<(usize, &Bid)> = None;
        for (bidder, list) in bids.iter().enumerate() {
            for (_, bid) in list.iter().filter(|(u, _)| *u == unit_index) {
                if best.is_none_or(|(_, b)| bid.price > b.price) {
                    best = Some((bidder, bid));
                }
            }
        }
        let Some((bidder, bid)) = best else {
            no_bid.push(unit.code.clone());
            continue;
        };
        let only_size = (unit.sizes.len() == 1).then(|| unit.sizes[0]);
        let markup = bid.adm.clone().filter(|m| !m.trim().is_empty());
        winners.push(Winner {
            ad_unit: unit.code.clone(),
            bidder: names[bidder].to_owned(),
            price: bid.price,
            width: bid.w.or(only_size.map(|s| s.w)),
            height: bid.h.or(only_size.map(|s| s.h)),
            url: if markup.is_none() {
                bid.nurl.clone()
            } else {
                None
            },
            markup,
            billing_url: bid.burl.clone(),
            creative_id: bid.crid.clone(),
            deal_id: bid.dealid.clone(),
            advertiser_domains: bid.adomain.clone(),
        });
    }
    (winners, no_bid)
}
