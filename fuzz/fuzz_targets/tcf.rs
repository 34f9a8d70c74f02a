//! TCF TC string decoder: arbitrary text must decode or fail, never panic.
#![no_main]

use gatehouse_core::consent::{DEFAULT_MAX_STRING_LENGTH, SignalKind, TcString, decode_to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(tc) = TcString::decode(s, DEFAULT_MAX_STRING_LENGTH) {
            let _ = tc.to_json();
        }
        let _ = decode_to_json(s, Some(SignalKind::Tcf));
    }
});
