# Tools: which MCP tool calls may run. Every tool is allowed unless [tools] denies it by name,
# or by a regular expression on one of its arguments.
package cordon.tools

import rego.v1

# Never undefined: a missing config section reads as empty, not as "no rules apply".
default cfg := {}

cfg := data.cordon.config.tools

deny contains msg if {
	input.tool in object.get(cfg, "deny", [])
	msg := sprintf("tool %s is denied by [tools] deny", [input.tool])
}

deny contains msg if {
	some rule in object.get(cfg, "deny_arguments", [])
	rule.tool == input.tool
	value := input.arguments[rule.argument]
	is_string(value)
	regex.match(rule.pattern, value)
	msg := sprintf("tool %s argument %s matches a denied pattern (%s)", [input.tool, rule.argument, rule.pattern])
}

deny contains "tool must be a string" if not is_string(input.tool)

default allow := false

allow if {
	is_string(input.tool)
	count(deny) == 0
}

decision := {"allow": allow, "reasons": deny}
