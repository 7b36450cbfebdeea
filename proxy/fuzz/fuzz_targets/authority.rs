//! Destinations as clients spell them (CONNECT lines, absolute-form URIs, Host headers).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(d) = cordon_proxy::host::parse_authority(text, Some(80))
    {
        // What was accepted normalises to itself.
        let again = cordon_proxy::host::parse_authority(&d.authority(), None);
        assert_eq!(again.as_ref(), Ok(&d));
    }
});
