//! Bodies of git pushes (pkt-lines and packs), which the proxy parses and inflates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cordon_proxy::pack::parse(data);
});
