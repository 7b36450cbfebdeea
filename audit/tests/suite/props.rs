//! Property tests of the record round trip: any event the writer accepts comes back intact and
//! verifies; canonical form does not depend on key order.

use cordon_audit::{AuditLog, DecisionRecord, Event, Kind, verify};
use proptest::prelude::*;
use serde_json::Value;

use super::{fast, lines};

fn arb_event() -> impl Strategy<Value = Event> {
    (
        prop::sample::select(vec![
            Kind::ToolCall,
            Kind::Egress,
            Kind::Decision,
            Kind::PolicyReload,
            Kind::Sandbox,
            Kind::File,
        ]),
        "\\PC{0,40}",
        proptest::option::of("\\PC{0,40}"),
        proptest::option::of((any::<bool>(), prop::collection::vec("\\PC{0,30}", 0..3))),
        proptest::option::of(any::<u32>()),
        prop::collection::btree_map("[a-z]{1,6}", "\\PC{0,12}", 0..3),
    )
        .prop_map(|(kind, action, target, decision, ms, detail)| {
            let mut e = Event::new(kind, action);
            e.target = target;
            e.decision = decision.map(|(allow, reasons)| DecisionRecord {
                allow,
                reasons,
                policy: "rego:x".into(),
            });
            e.duration_ms = ms.map(u64::from);
            e.detail = detail
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_event_round_trips_and_verifies(events in prop::collection::vec(arb_event(), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, fast()).unwrap();
        for e in &events {
            log.append(e.clone()).unwrap();
        }
        drop(log);
        let report = verify(&path).unwrap();
        prop_assert!(report.intact(), "{:?}", report.problems);
        for (line, event) in lines(&path).iter().zip(&events) {
            let rec: cordon_audit::Record = serde_json::from_str(line).unwrap();
            prop_assert_eq!(&rec.event, event);
        }
    }
}
