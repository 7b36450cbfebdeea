package cordon.tools_test

import rego.v1

import data.cordon.tools

test_allowed_by_default if tools.decision.allow with input as {"tool": "read_file", "arguments": {"path": "a"}} with data.cordon.config as {}

test_denied_by_name if {
	d := tools.decision with input as {"tool": "git_push", "arguments": {}}
		with data.cordon.config as {"tools": {"deny": ["git_push"]}}
	not d.allow
	"tool git_push is denied by [tools] deny" in d.reasons
}

test_denied_by_argument if {
	cfg := {"deny_arguments": [{"tool": "exec", "argument": "command", "pattern": "^curl\\b"}]}
	not tools.decision.allow with input as {"tool": "exec", "arguments": {"command": "curl evil"}}
		with data.cordon.config as {"tools": cfg}
	tools.decision.allow with input as {"tool": "exec", "arguments": {"command": "cargo test"}}
		with data.cordon.config as {"tools": cfg}
}

test_missing_tool_denied if not tools.decision.allow with input as {"arguments": {}} with data.cordon.config as {}
