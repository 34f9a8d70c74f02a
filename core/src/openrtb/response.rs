//! The OpenRTB 2.6 `BidResponse` subset Gatehouse reads. Unknown fields are ignored.

use serde::{Deserialize, Serialize};

/// The largest bid response body parsed; a larger one is refused unread.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// `BidResponse` (OpenRTB 2.6 §4.2.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BidResponse {
    /// `id`: must echo the request's `id`.
    pub id: String,
    /// `seatbid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seatbid: Vec<SeatBid>,
    /// `cur`: the bid currency; OpenRTB's default is `USD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cur: Option<String>,
    /// `nbr`: no-bid reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbr: Option<u32>,
}

/// `SeatBid` (§4.2.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeatBid {
    /// `seatbid.bid`.
    #[serde(default)]
    pub bid: Vec<Bid>,
    /// `seatbid.seat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
}

/// `Bid` (§4.2.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bid {
    /// `bid.id`.
    pub id: String,
    /// `bid.impid`: the `imp.id` this bid is for.
    pub impid: String,
    /// `bid.price`, CPM in the response currency.
    pub price: f64,
    /// `bid.adm`: the creative markup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<String>,
    /// `bid.nurl`: the win notice URL (which may serve the markup when `adm` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nurl: Option<String>,
    /// `bid.burl`: the billing notice URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burl: Option<String>,
    /// `bid.adomain`: advertiser domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adomain: Vec<String>,
    /// `bid.crid`: creative id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crid: Option<String>,
    /// `bid.dealid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealid: Option<String>,
    /// `bid.w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<u32>,
    /// `bid.h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<u32>,
}

/// Why a bid response body was refused (the whole bidder is then dropped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BidResponseError {
    /// The body is larger than [`MAX_RESPONSE_BYTES`].
    #[error("bid response is {len} bytes, over the limit of {MAX_RESPONSE_BYTES}")]
    TooLarge {
        /// The body's length.
        len: usize,
    },
    /// The body is not JSON, or not the shape of a `BidResponse` (a missing `id`, a `price`
    /// that is not a number, ...). Only the position is kept: the body is the bidder's.
    #[error("malformed bid response at line {line}, column {column}")]
    Malformed {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
}

impl BidResponse {
    /// Parses a bid response body.
    ///
    /// # Errors
    /// [`BidResponseError::TooLarge`] over [`MAX_RESPONSE_BYTES`], [`BidResponseError::Malformed`]
    /// for anything that does not deserialise.
    pub fn parse(body: &[u8]) -> Result<Self, BidResponseError> {
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(BidResponseError::TooLarge { len: body.len() });
        }
        serde_json::from_slice(body).map_err(|e| BidResponseError::Malformed {
            line: e.line(),
            column: e.column(),
        })
    }
}
