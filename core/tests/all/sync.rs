//! Partner sync: `[[partners]]` validation and authentication, the auction's link to partners,
//! and batch sync applied to an in-memory identity store.

mod batch;
mod partners;
