package cordon.files_test

import rego.v1

import data.cordon.files

w(path) := {"operation": "write", "path": path, "in_workspace": true, "write": true}

writes := {"read": false, "list": false}

op(o, path) := {"operation": o, "path": path, "in_workspace": true, "write": object.get(writes, o, true)}

mv(from, to) := {"operation": "rename", "path": from, "to": to, "in_workspace": true, "write": true}

allowed(inp) if {
	files.decision.allow with input as inp with data.cordon.config as {}
}

test_ordinary_write_allowed if allowed(w("src/main.rs"))

test_ci_files_denied_at_every_depth if {
	every p in [
		".github/workflows/ci.yml", "sub/repo/.github/workflows/x.yml", ".gitlab-ci.yml",
		"a/b/.gitlab-ci.yml", ".circleci/config.yml", "Jenkinsfile", "svc/Jenkinsfile",
		"azure-pipelines.yml", ".buildkite/pipeline.yml", "bitbucket-pipelines.yml",
		".travis.yml", ".pre-commit-config.yaml",
	] {
		not allowed(w(p))
	}
}

test_git_and_tool_settings_denied if {
	every p in [
		".git/hooks/pre-commit", "vendor/lib/.git/hooks/post-checkout", ".git/config",
		".gitattributes", ".gitmodules", ".envrc", ".vscode/settings.json", ".idea/workspace.xml",
		".mcp.json", ".claude/settings.json", ".codex/config.toml",
	] {
		not allowed(w(p))
	}
}

test_lookalikes_allowed if {
	allowed(w("docs/github/workflows.md"))
	allowed(w("my.gitlab-ci.yml.bak"))
	allowed(w("Jenkinsfile.md"))
	allowed(w(".github/CODEOWNERS.txt"))
}

test_reads_allowed_by_default if {
	allowed(op("read", ".github/workflows/ci.yml"))
	allowed(op("read", ".env"))
}

test_deny_read_from_config if {
	not files.decision.allow with input as op("read", "app/.env")
		with data.cordon.config as {"files": {"deny_read": [".env"]}}
}

test_extra_protected_from_config if {
	not files.decision.allow with input as w("deploy/prod.tf")
		with data.cordon.config as {"files": {"protect": ["deploy/**"]}}
}

test_outside_workspace_denied if {
	d := files.decision with input as {"operation": "read", "path": "/etc/passwd", "in_workspace": false, "write": false} with data.cordon.config as {}
	not d.allow
	"path /etc/passwd is outside the workspace" in d.reasons
}

test_missing_in_workspace_denied if not allowed({"operation": "read", "path": "a"})

test_rename_into_protected_denied if not allowed(mv("evil.yml", ".github/workflows/ci.yml"))

test_rename_parent_aside_denied if {
	not allowed(mv(".github", "old"))
	not allowed(mv(".github/workflows", "x"))
	not allowed(mv("sub/.git", "sub/.git-old"))
	not allowed(op("delete", ".git/hooks"))
}

test_rename_over_holder_denied if not allowed(mv("fake", ".github"))

test_ordinary_rename_allowed if allowed(mv("a.txt", "b.txt"))

test_unknown_operation_denied if not allowed(op("chmod", "a"))

test_reason_says_protected if {
	d := files.decision with input as w("sub/repo/.github/workflows/x.yml") with data.cordon.config as {}
	some r in d.reasons
	contains(r, "protected")
}
