//! Properties of the parsers that see attacker-controlled input: they answer every input
//! without panicking, and what they accept is stable.

use cordon_proxy::host::parse_authority;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn authorities_never_panic_and_normalise_once(raw in "\\PC{0,80}") {
        if let Ok(d) = parse_authority(&raw, Some(80)) {
            // The normalised form parses to itself.
            let again = parse_authority(&d.authority(), None).unwrap();
            prop_assert_eq!(&again, &d);
            prop_assert!(!d.host.is_empty());
            prop_assert!(d.host.is_ascii());
            prop_assert!(d.port > 0);
        }
    }

    #[test]
    fn host_like_inputs_never_panic(
        host in "[0-9a-zA-Z.:\\[\\]%_-]{0,40}",
        port in proptest::option::of(0u32..70000),
    ) {
        let raw = match port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let _ = parse_authority(&raw, None);
    }

    #[test]
    fn pushes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = cordon_proxy::pack::parse(&body);
        let mut framed = b"0000PACK\0\0\0\x02\0\0\0\x03".to_vec();
        framed.extend_from_slice(&body);
        let _ = cordon_proxy::pack::parse(&framed);
    }
}
