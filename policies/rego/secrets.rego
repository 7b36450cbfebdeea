# Secrets: what happens to content in which the scanner found credentials.
#
# Each finding gets an action: a per-rule override from [secrets] rules, else a per-destination
# override from [secrets] destinations, else the channel's default (egress: block, tool output:
# redact, file writes: allow, git pushes: block). The most severe action wins.
package cordon.secrets

import rego.v1

# Never undefined: a missing config section reads as empty, not as "no rules apply".
default cfg := {}

cfg := data.cordon.config.secrets

default_channels := {"egress": "block", "tool_output": "redact", "file_write": "allow", "git_push": "block"}

channels := object.union(default_channels, object.get(cfg, "channels", {}))

rule_overrides := object.get(cfg, "rules", {})

destinations := object.get(cfg, "destinations", [])

rank := {"allow": 0, "redact": 1, "block": 2}

names := ["allow", "redact", "block"]

# An unknown channel is treated as egress would be: block.
channel_action := object.get(channels, input.channel, "block")

destination_action := a if {
	some d in destinations
	not d.wildcard
	d.host == input.destination
	a := d.action
}

destination_action := a if {
	some d in destinations
	d.wildcard
	endswith(input.destination, d.host)
	a := d.action
}

finding_action(f) := rule_overrides[f.rule]

finding_action(f) := destination_action if {
	not rule_overrides[f.rule]
}

finding_action(f) := channel_action if {
	not rule_overrides[f.rule]
	not destination_action
}

findings := object.get(input, "findings", [])

actions := [finding_action(f) | some f in findings]

# Every finding must have produced an action, or something is wrong: block.
action := "block" if count(actions) != count(findings)

action := "allow" if count(findings) == 0

action := names[max([rank[a] | some a in actions])] if {
	count(findings) > 0
	count(actions) == count(findings)
}

reasons contains msg if {
	some f in findings
	a := finding_action(f)
	a != "allow"
	msg := sprintf("%s secret (%s) in %s to %s: %s", [f.rule, f.fingerprint, input.channel, input.destination, a])
}

decision := {"allow": action != "block", "reasons": reasons, "action": action}
