package cordon.git_test

import rego.v1

import data.cordon.git

push(branch, paths) := {"operation": "push", "branch": branch, "force": false, "changed_paths": paths, "remote": "origin"}

test_feature_branch_push_allowed if git.decision.allow with input as push("agent/fix", ["src/a.rs"]) with data.cordon.config as {}

test_push_to_main_denied if {
	d := git.decision with input as push("main", ["src/a.rs"]) with data.cordon.config as {}
	not d.allow
	"branch main is protected; push to a new branch and open a review" in d.reasons
}

test_force_push_denied if not git.decision.allow with input as object.union(push("agent/x", []), {"force": true}) with data.cordon.config as {}

test_force_push_allowed_by_config if {
	git.decision.allow with input as object.union(push("agent/x", []), {"force": true})
		with data.cordon.config as {"git": {"allow_force_push": true, "protected_branches": ["main"]}}
}

test_push_changing_workflows_denied if {
	d := git.decision with input as push("agent/x", ["src/a.rs", ".github/workflows/ci.yml"]) with data.cordon.config as {}
	not d.allow
	"the push changes protected file .github/workflows/ci.yml" in d.reasons
}

test_configured_branch_globs if {
	not git.decision.allow with input as push("release/1.2", [])
		with data.cordon.config as {"git": {"protected_branches": ["release/*"]}}
}

test_commit_allowed if git.decision.allow with input as {"operation": "commit", "branch": "main", "changed_paths": []} with data.cordon.config as {}

test_unknown_operation_denied if not git.decision.allow with input as {"operation": "rebase", "branch": "x"} with data.cordon.config as {}
