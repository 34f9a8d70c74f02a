//! GPP decoder (header, every section type): never panic, never expand hostile ranges.
#![no_main]

use gatehouse_core::consent::{DEFAULT_MAX_STRING_LENGTH, GppString, parse_gpp_sid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(g) = GppString::decode(s, DEFAULT_MAX_STRING_LENGTH) {
            let _ = g.to_json();
            let _ = g.us_sections().count();
        }
        let _ = parse_gpp_sid(s);
    }
});
