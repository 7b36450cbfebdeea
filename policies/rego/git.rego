# Git: which commits and pushes may happen. Pushes may not rewrite history, update a protected
# branch, or carry changes to protected files (the files policy's list, so both stay in step).
package cordon.git

import rego.v1

import data.cordon.files

# Never undefined: a missing config section reads as empty, not as "no rules apply".
default cfg := {}

cfg := data.cordon.config.git

protected_branches := object.get(cfg, "protected_branches", ["main", "master"])

protected_branch(branch) if {
	some pattern in protected_branches
	glob.match(pattern, ["/"], branch)
}

deny contains msg if {
	input.operation == "push"
	input.force == true
	not object.get(cfg, "allow_force_push", false)
	msg := sprintf("force push to %s rewrites history and is denied", [input.branch])
}

deny contains msg if {
	input.operation == "push"
	protected_branch(input.branch)
	msg := sprintf("branch %s is protected; push to a new branch and open a review", [input.branch])
}

deny contains msg if {
	input.operation == "push"
	some path in object.get(input, "changed_paths", [])
	files.protected_path(path)
	msg := sprintf("the push changes protected file %s", [path])
}

deny contains "push without a branch" if {
	input.operation == "push"
	object.get(input, "branch", "") == ""
}

deny contains msg if {
	not input.operation in {"commit", "push"}
	msg := sprintf("unknown git operation %v", [object.get(input, "operation", null)])
}

default allow := false

allow if count(deny) == 0

decision := {"allow": allow, "reasons": deny}
