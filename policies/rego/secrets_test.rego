package cordon.secrets_test

import rego.v1

import data.cordon.secrets

f(rule) := {"rule": rule, "fingerprint": "fp1234"}

test_no_findings_allowed if {
	d := secrets.decision with input as {"channel": "egress", "destination": "github.com", "findings": []} with data.cordon.config as {}
	d.allow
	d.action == "allow"
}

test_egress_blocks_by_default if {
	d := secrets.decision with input as {"channel": "egress", "destination": "api.example.com", "findings": [f("github-pat")]} with data.cordon.config as {}
	not d.allow
	d.action == "block"
	"github-pat secret (fp1234) in egress to api.example.com: block" in d.reasons
}

test_tool_output_redacts_by_default if {
	d := secrets.decision with input as {"channel": "tool_output", "destination": "read_file", "findings": [f("aws-access-key")]} with data.cordon.config as {}
	d.allow
	d.action == "redact"
}

test_rule_override_wins if {
	d := secrets.decision with input as {"channel": "egress", "destination": "x", "findings": [f("generic-assignment")]}
		with data.cordon.config as {"secrets": {"rules": {"generic-assignment": "allow"}}}
	d.action == "allow"
}

test_destination_override if {
	cfg := {"destinations": [{"host": ".internal.example", "wildcard": true, "action": "allow"}]}
	d := secrets.decision with input as {"channel": "egress", "destination": "vault.internal.example", "findings": [f("x")]}
		with data.cordon.config as {"secrets": cfg}
	d.action == "allow"
	d2 := secrets.decision with input as {"channel": "egress", "destination": "internal.example.evil", "findings": [f("x")]}
		with data.cordon.config as {"secrets": cfg}
	d2.action == "block"
}

test_most_severe_wins if {
	d := secrets.decision with input as {"channel": "tool_output", "destination": "t", "findings": [f("a"), f("b")]}
		with data.cordon.config as {"secrets": {"rules": {"b": "block"}}}
	d.action == "block"
	not d.allow
}

test_unknown_channel_blocks if {
	d := secrets.decision with input as {"channel": "carrier_pigeon", "destination": "x", "findings": [f("a")]} with data.cordon.config as {}
	d.action == "block"
}
