//! Property tests at the input boundary: whatever JSON arrives, parsing never panics, and what
//! it accepts is normalised once and for all.

use cordon_policy::{Area, AreaInput, Context};
use proptest::prelude::*;
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,24}".prop_map(Value::String),
        prop_oneof![
            Just("127.0.0.1"),
            Just("::ffff:10.0.0.1"),
            Just("[::1]"),
            Just("GitHub.COM."),
            Just("../../x"),
            Just("/etc/passwd"),
            Just("a/./b//c")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("phase".to_owned()),
                    Just("host".to_owned()),
                    Just("port".to_owned()),
                    Just("ips".to_owned()),
                    Just("operation".to_owned()),
                    Just("path".to_owned()),
                    Just("to".to_owned()),
                    Just("tool".to_owned()),
                    Just("arguments".to_owned()),
                    Just("branch".to_owned()),
                    Just("channel".to_owned()),
                    Just("findings".to_owned()),
                    Just("sandbox".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_area() -> impl Strategy<Value = Area> {
    prop::sample::select(Area::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_any_json_never_panics_and_normalising_is_idempotent(area in arb_area(), value in arb_json()) {
        if let Ok((ctx, input)) = AreaInput::from_json(area, value) {
            let once = input.to_value(&ctx).unwrap();
            let mut again = input.clone();
            again.normalise().unwrap();
            prop_assert_eq!(once, again.to_value(&ctx).unwrap());
        }
    }

    #[test]
    fn network_inputs_always_carry_their_ip_literal(host in prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
    ], port in 1u16..) {
        let (_, input) = AreaInput::from_json(Area::Network, json!({"phase": "connect", "host": host, "port": port})).unwrap();
        let v = input.to_value(&Context::default()).unwrap();
        let ip = v["host"].as_str().unwrap().to_owned();
        prop_assert!(v["ips"].as_array().unwrap().contains(&Value::String(ip)));
    }

    #[test]
    fn workspace_paths_never_claim_inside_when_they_escape(parts in prop::collection::vec(prop_oneof![Just(".."), Just("."), Just("a"), Just("b"), Just("")], 0..8)) {
        let raw = parts.join("/");
        if raw.is_empty() { return Ok(()); }
        let (norm, inside) = cordon_policy::input::normalise_workspace_path(&raw).unwrap();
        // Count depth directly: inside means the walk never goes above the root.
        // An absolute path (a leading empty segment) is outside by definition.
        let mut depth: i32 = 0;
        let mut escaped = raw.starts_with('/');
        for p in &parts {
            match *p { ".." => { depth -= 1; if depth < 0 { escaped = true; depth = 0; } }, "a" | "b" => depth += 1, _ => {} }
        }
        prop_assert_eq!(inside, !escaped, "{} -> {}", raw, norm);
        prop_assert!(!norm.split('/').any(|s| s == ".."));
    }
}
