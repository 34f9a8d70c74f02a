//! Choosing winners from the bidders' answers; dropping bidders that fail.

use gatehouse_core::auction::{
    AuctionResult, BidderError, BidderOutcome, BidderStatus, RejectedBid,
};
use serde_json::{Value, json};

use super::support::{REQUEST_ID, auction, input};

fn bid(impid: &str, price: f64, extra: Value) -> Value {
    let mut b = json!({"id": format!("b-{impid}-{price}"), "impid": impid, "price": price, "adm": "<div>ad</div>"});
    if let (Some(obj), Some(more)) = (b.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    b
}

fn response(bids: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"id": REQUEST_ID, "cur": "USD", "seatbid": [{"seat": "s", "bid": bids}]}),
    )
    .expect("json")
}

fn run(outcomes: &[BidderOutcome<'_>]) -> AuctionResult {
    auction().choose_winners(&input(), REQUEST_ID, outcomes)
}

fn ok(body: &[u8]) -> BidderOutcome<'_> {
    BidderOutcome::Answered { status: 200, body }
}

const NO_BID: BidderOutcome<'static> = BidderOutcome::Answered {
    status: 204,
    body: b"",
};

#[test]
fn the_highest_bid_per_ad_unit_wins() {
    let a = response(vec![
        bid("1", 1.2, json!({"w": 728, "h": 90})),
        bid("2", 0.9, json!({})),
    ]);
    let b = response(vec![bid("1", 2.5, json!({"w": 970, "h": 250}))]);
    let c = response(vec![bid(
        "2",
        1.1,
        json!({"crid": "cr-9", "adomain": ["brand.example"]}),
    )]);
    let result = run(&[ok(&a), ok(&b), ok(&c)]);
    let winners: Vec<_> = result
        .winners
        .iter()
        .map(|w| (w.ad_unit.as_str(), w.bidder.as_str(), w.price))
        .collect();
    assert_eq!(winners, [("top", "beta", 2.5), ("side", "gamma", 1.1)]);
    assert_eq!(
        (result.winners[0].width, result.winners[0].height),
        (Some(970), Some(250))
    );
    // The only size of `side` fills in a bid without w/h.
    assert_eq!(
        (result.winners[1].width, result.winners[1].height),
        (Some(300), Some(250))
    );
    assert!(result.no_bid.is_empty());
}

#[test]
fn ties_go_to_the_bidder_configured_first_then_the_first_bid() {
    let a = response(vec![
        bid("2", 1.0, json!({"crid": "alpha-1"})),
        bid("2", 1.0, json!({"crid": "alpha-2"})),
    ]);
    let c = response(vec![bid("2", 1.0, json!({"crid": "gamma-1"}))]);
    for _ in 0..3 {
        let result = run(&[ok(&a), NO_BID, ok(&c)]);
        assert_eq!(result.winners[0].bidder, "alpha");
        assert_eq!(result.winners[0].creative_id.as_deref(), Some("alpha-1"));
    }
    // The same bids, configured the other way round: the earlier bidder still wins.
    let result = run(&[NO_BID, ok(&c), ok(&a)]);
    assert_eq!(result.winners[0].bidder, "beta");
    assert_eq!(result.winners[0].creative_id.as_deref(), Some("gamma-1"));
}

#[test]
fn bids_below_the_floor_lose_and_a_bid_at_the_floor_wins() {
    let a = response(vec![bid("2", 0.49, json!({}))]);
    let c = response(vec![bid("2", 0.5, json!({}))]);
    let result = run(&[ok(&a), NO_BID, ok(&c)]);
    assert_eq!(result.winners.len(), 1);
    assert_eq!(
        (result.winners[0].bidder.as_str(), result.winners[0].price),
        ("gamma", 0.5)
    );
    assert_eq!(result.bidders[0].rejected, [RejectedBid::BelowFloor]);
    assert_eq!(result.bidders[0].status, BidderStatus::NoBid);
    assert_eq!(result.no_bid, ["top"]);
}

#[test]
fn invalid_bids_are_rejected_one_by_one() {
    let a = response(vec![
        bid("9", 5.0, json!({})),
        bid("01", 5.0, json!({})),
        bid("1", 0.0, json!({})),
        bid("1", 5.0, json!({"w": 300, "h": 600})),
        bid("1", 5.0, json!({"w": 728})),
        bid("1", 1e12, json!({})),
        json!({"id": "x", "impid": "1", "price": 5.0}),
        bid("1", 0.3, json!({})),
    ]);
    let result = run(&[ok(&a), NO_BID, NO_BID]);
    assert_eq!(
        result.bidders[0].rejected,
        [
            RejectedBid::UnknownImp,
            RejectedBid::UnknownImp,
            RejectedBid::NonPositivePrice,
            RejectedBid::SizeNotRequested,
            RejectedBid::SizeNotRequested,
            RejectedBid::ImplausiblePrice,
            RejectedBid::NoCreative,
        ]
    );
    assert_eq!(result.winners.len(), 1);
    assert_eq!(result.winners[0].price, 0.3);
    // Two sizes requested, none in the bid: the size is not guessed.
    assert_eq!(result.winners[0].width, None);
}

#[test]
fn a_creative_url_is_used_when_there_is_no_markup() {
    let a = response(vec![
        json!({"id": "u", "impid": "1", "price": 1.0, "nurl": "https://ssp.example/win?p=${AUCTION_PRICE}", "burl": "https://ssp.example/bill"}),
    ]);
    let result = run(&[ok(&a), NO_BID, NO_BID]);
    let w = &result.winners[0];
    assert_eq!(w.markup, None);
    assert_eq!(
        w.url.as_deref(),
        Some("https://ssp.example/win?p=${AUCTION_PRICE}")
    );
    assert_eq!(w.billing_url.as_deref(), Some("https://ssp.example/bill"));
}

#[test]
fn timed_out_failing_and_malformed_bidders_are_dropped_and_the_good_bid_still_wins() {
    let good = response(vec![bid("1", 1.0, json!({}))]);
    let result = run(&[
        BidderOutcome::TimedOut,
        BidderOutcome::Answered {
            status: 500,
            body: b"oops",
        },
        ok(&good),
    ]);
    assert_eq!(result.winners[0].bidder, "gamma");
    assert_eq!(result.timed_out, ["alpha"]);
    assert_eq!(result.failed, ["beta"]);
    assert!(matches!(
        result.errors[1],
        BidderError::Status { status: 500, .. }
    ));

    let result = run(&[
        ok(b"{\"id\": \"req-7f3a\", \"seatbid\": [{\"bid\": [{\"price\": \"x\"}]}"),
        NO_BID,
        ok(&good),
    ]);
    assert_eq!(result.failed, ["alpha"]);
    assert_eq!(result.bidders[0].error, Some("malformed-response"));
    assert_eq!(result.winners[0].bidder, "gamma");
}

#[test]
fn a_response_for_another_request_or_currency_drops_the_bidder() {
    let other_id = serde_json::to_vec(
        &json!({"id": "other", "seatbid": [{"bid": [bid("1", 9.0, json!({}))]}]}),
    )
    .expect("json");
    let eur = serde_json::to_vec(
        &json!({"id": REQUEST_ID, "cur": "EUR", "seatbid": [{"bid": [bid("1", 9.0, json!({}))]}]}),
    )
    .expect("json");
    // No `cur`: OpenRTB's default, USD, is the auction currency.
    let default_cur = serde_json::to_vec(
        &json!({"id": REQUEST_ID, "seatbid": [{"bid": [bid("1", 1.0, json!({}))]}]}),
    )
    .expect("json");
    let result = run(&[ok(&other_id), ok(&eur), ok(&default_cur)]);
    assert_eq!(result.failed, ["alpha", "beta"]);
    assert_eq!(result.bidders[0].error, Some("request-id-mismatch"));
    assert_eq!(result.bidders[1].error, Some("currency"));
    assert_eq!(result.winners[0].bidder, "gamma");
}

#[test]
fn no_content_and_empty_bodies_are_no_bids_and_a_missing_outcome_is_a_timeout() {
    let result = run(&[NO_BID, ok(b"  ")]);
    assert_eq!(result.bidders[0].status, BidderStatus::NoBid);
    assert_eq!(result.bidders[1].status, BidderStatus::NoBid);
    assert_eq!(result.timed_out, ["gamma"]);
    assert_eq!(result.no_bid, ["top", "side"]);
}

#[test]
fn the_page_response_shape() {
    let a = response(vec![bid(
        "1",
        1.5,
        json!({"w": 728, "h": 90, "crid": "c1"}),
    )]);
    let result = run(&[
        ok(&a),
        BidderOutcome::TimedOut,
        BidderOutcome::TransportFailed,
    ]);
    assert_eq!(
        serde_json::to_value(&result).expect("json"),
        json!({
            "id": REQUEST_ID,
            "currency": "USD",
            "winners": [{"ad_unit": "top", "bidder": "alpha", "price": 1.5, "width": 728, "height": 90,
                         "markup": "<div>ad</div>", "creative_id": "c1"}],
            "no_bid": ["side"],
            "timed_out": ["beta"],
            "failed": ["gamma"],
            "bidders": [
                {"bidder": "alpha", "status": "bid", "bids": 1},
                {"bidder": "beta", "status": "timed_out", "error": "timed-out", "bids": 0},
                {"bidder": "gamma", "status": "failed", "error": "transport", "bids": 0}
            ]
        })
    );
}

#[test]
fn any_truncation_or_byte_corruption_of_an_answer_drops_at_most_that_bidder() {
    let good = response(vec![
        bid(
            "1",
            1.0,
            json!({"w": 728, "h": 90, "adomain": ["a.example"]}),
        ),
        bid("2", 2.0, json!({"nurl": "https://n.example/"})),
    ]);
    let other = response(vec![bid("2", 0.75, json!({}))]);
    let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    for i in 0..good.len() {
        for replacement in [b'"', b'{', b']', b'0', 0xff, b'\\'] {
            let mut corrupt = good.clone();
            corrupt[i] = replacement;
            cases.push(corrupt);
        }
    }
    for case in &cases {
        let result = run(&[ok(case), NO_BID, ok(&other)]);
        // The other bidder's bid is always there; the corrupted bidder never panics the auction
        // and, when it is not dropped, only its valid bids count.
        assert_eq!(result.bidders[2].status, BidderStatus::Bid);
        let side = result
            .winners
            .iter()
            .find(|w| w.ad_unit == "side")
            .expect("gamma's valid bid keeps `side` sold");
        assert!(side.bidder == "gamma" || side.price > 0.75, "{side:?}");
        for w in &result.winners {
            assert!(w.price > 0.0 && w.price <= gatehouse_core::auction::MAX_BID_PRICE);
        }
    }
}
