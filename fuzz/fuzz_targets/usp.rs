//! US Privacy and Additional Consent parsers plus kind auto-detection.
#![no_main]

use gatehouse_core::consent::{
    AdditionalConsent, DEFAULT_MAX_STRING_LENGTH, UsPrivacy, decode_to_json,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<UsPrivacy>();
        let _ = AdditionalConsent::decode(s, DEFAULT_MAX_STRING_LENGTH);
        let _ = decode_to_json(s, None);
    }
});
