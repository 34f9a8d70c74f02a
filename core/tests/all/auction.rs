//! The auction in process: bid requests built from a request the page pipeline decided (mock
//! providers, fixed clock), golden files of the exact JSON each bidder receives, input
//! validation, cookie forwarding modes, device facts and winners.

mod config;
mod device;
mod forwarding;
mod golden;
mod input;
mod support;
mod winners;
