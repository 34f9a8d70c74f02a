//! OpenRTB 2.6 types for what Gatehouse sends to bidders and reads back from them.
//!
//! Why our own types: the crates on crates.io (`openrtb2` 0.3, `openrtb` 0.2) implement OpenRTB
//! 2.5 only (no `regs.gpp`, `regs.gpp_sid`, `source.tid` in 2.6 form) and are not maintained. These
//! structs cover exactly the fields Gatehouse fills or reads.
//!
//! Invariants:
//! - Serialising a request never writes `null`: every optional field is `Option` or a `Vec` with
//!   `skip_serializing_if`, so an absent field is absent on the wire (a `null` `regs.gdpr` is read
//!   by some exchanges as `0`).
//! - Parsing a response is total: [`BidResponse::parse`] returns a typed [`BidResponseError`] for
//!   anything that is not a well-formed response, never panics, and ignores unknown fields (`ext`
//!   and vendor extensions) as OpenRTB requires.
//!
//! This module must never perform I/O.

mod country;
mod request;
mod response;

pub use country::{ALPHA2_TO_ALPHA3, alpha3};
pub use request::{
    Banner, BidRequest, ConsentedProvidersSettings, Device, Eid, Format, Geo, Imp, Publisher, Regs,
    RegsExt, Site, Source, Uid, User, UserExt,
};
pub use response::{Bid, BidResponse, BidResponseError, MAX_RESPONSE_BYTES, SeatBid};
