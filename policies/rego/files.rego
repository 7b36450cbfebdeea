# Files: which workspace paths the agent may read and change.
#
# Writes to CI and automation files, git hooks and config, and editor/agent settings are
# denied at every depth (a nested repository's .github/workflows counts too), and so is moving
# or deleting a directory that holds them. Anything outside the workspace is denied.
# Reads are allowed unless a pattern in [files] deny_read matches.
#
# Input: operation, path (normalised, workspace-relative), to (for rename), in_workspace and
# write (both computed by cordon, never by the caller).
package cordon.files

import rego.v1

# Never undefined: a missing config section reads as empty, not as "no rules apply".
default cfg := {}

cfg := data.cordon.config.files

default_protected := [
	".github/workflows/**",
	".github/actions/**",
	".gitlab-ci.yml",
	".gitlab/ci/**",
	".circleci/**",
	"Jenkinsfile",
	"azure-pipelines.yml",
	".azure-pipelines/**",
	".buildkite/**",
	"bitbucket-pipelines.yml",
	".travis.yml",
	".drone.yml",
	".woodpecker/**",
	".pre-commit-config.yaml",
	".git/hooks/**",
	".git/config",
	".git/config.worktree",
	".git/info/attributes",
	".git/worktrees/*/config.worktree",
	".gitattributes",
	".gitmodules",
	".envrc",
	".vscode/**",
	".idea/**",
	".devcontainer/**",
	".mcp.json",
	".claude/**",
	".codex/**",
	".cursor/**",
]

protected := array.concat(default_protected, object.get(cfg, "protect", []))

deny_read := object.get(cfg, "deny_read", [])

# A pattern matches the path itself or the same path at any depth. The common shapes are
# matched with string operations (glob.match compiles its pattern on every call):
#   "dir/**"  any path under dir, at any depth
#   "name"    that file or path, at any depth
# Anything else with glob syntax falls back to glob.match.
is_glob(pattern) if regex.match(`[*?\[{]`, trim_suffix(pattern, "/**"))

matches(path, pattern) if {
	endswith(pattern, "/**")
	not is_glob(pattern)
	dir := trim_suffix(pattern, "/**")
	startswith(path, concat("", [dir, "/"]))
}

matches(path, pattern) if {
	endswith(pattern, "/**")
	not is_glob(pattern)
	dir := trim_suffix(pattern, "/**")
	contains(path, concat("", ["/", dir, "/"]))
}

matches(path, pattern) if {
	not endswith(pattern, "/**")
	not is_glob(pattern)
	path == pattern
}

matches(path, pattern) if {
	not endswith(pattern, "/**")
	not is_glob(pattern)
	endswith(path, concat("", ["/", pattern]))
}

matches(path, pattern) if {
	is_glob(pattern)
	glob.match(pattern, ["/"], path)
}

matches(path, pattern) if {
	is_glob(pattern)
	glob.match(concat("/", ["**", pattern]), ["/"], path)
}

protected_path(path) if {
	some pattern in protected
	matches(path, pattern)
}

# Directories that hold protected paths (".github", ".github/workflows", ".git", ...): moving or
# deleting one would move the protected files with it, or make room to recreate them.
holders contains dir if {
	some pattern in protected
	parts := split(pattern, "/")
	count(parts) > 1
	some i in numbers.range(1, count(parts) - 1)
	dir := concat("/", array.slice(parts, 0, i))
	not contains(dir, "*")
}

holds_protected(path) if {
	some dir in holders
	path == dir
}

holds_protected(path) if {
	some dir in holders
	endswith(path, concat("", ["/", dir]))
}

holds_protected(".") := true

structural := {"rename", "delete"}

deny contains msg if {
	not input.in_workspace == true
	msg := sprintf("path %s is outside the workspace", [object.get(input, "path", "<missing>")])
}

deny contains msg if {
	input.write == true
	protected_path(input.path)
	msg := sprintf("%s is a protected file (CI, git hooks and config, editor and agent settings)", [input.path])
}

deny contains msg if {
	input.operation in structural
	holds_protected(input.path)
	msg := sprintf("%s holds protected files and cannot be moved or deleted", [input.path])
}

deny contains msg if {
	input.operation == "rename"
	protected_path(input.to)
	msg := sprintf("%s is a protected file (CI, git hooks and config, editor and agent settings)", [input.to])
}

deny contains msg if {
	input.operation == "rename"
	holds_protected(input.to)
	msg := sprintf("%s would replace a directory that holds protected files", [input.to])
}

deny contains msg if {
	input.operation in {"read", "list"}
	some pattern in deny_read
	matches(input.path, pattern)
	msg := sprintf("%s may not be read (matches [files] deny_read %s)", [input.path, pattern])
}

known_operations := {"read", "list", "write", "mkdir", "delete", "rename"}

deny contains msg if {
	not input.operation in known_operations
	msg := sprintf("unknown file operation %v", [object.get(input, "operation", null)])
}

deny contains "path must be a string" if not is_string(input.path)

default allow := false

allow if {
	is_string(input.path)
	count(deny) == 0
}

decision := {"allow": allow, "reasons": deny}
