# Network egress: which destinations a sandbox may reach.
#
# Asked at connect time (host, port, resolved ips), per HTTP request when the proxy can see
# requests, and before resolving a name (phase "dns", no ips yet). Allowed only when the host
# matches the allowlist AND no address is in an always-denied range.
#
# Data: data.cordon.config.network (from cordon.toml [network]), with the host patterns
# already validated and indexed by cordon: `hosts` maps an exact host to its allowed ports
# ([] = any), `suffixes` lists {suffix: ".example.com", ports} for "*.example.com" patterns.
package cordon.network

import rego.v1

# Never undefined: a missing config section reads as empty, not as "no rules apply".
default cfg := {}

cfg := data.cordon.config.network

hosts := object.get(cfg, "hosts", {})

suffixes := object.get(cfg, "suffixes", [])

any_port_suffixes := object.get(cfg, "any_port_suffixes", [])

port_suffixes := object.get(cfg, "port_suffixes", [])

allow_addresses := object.get(cfg, "allow_addresses", [])

# Names that reach cloud metadata services or the machine itself, whatever they resolve to.
blocked_names := data.cordon.tables.network.blocked_names


# Always denied unless an operator names the range in [network] allow_addresses. The tables
# are data (data.json beside this file), indexed so that an address is checked against a few
# ranges rather than all of them:
#   v4_by_octet  first octet -> [[range, kind]]
#   v6_*_groups  [{range, members}]: IPv6 spellings that embed an IPv4 address (mapped,
#                compatible, NAT64, 6to4), with each always-denied IPv4 range in that spelling
#   v6_*_native  [[range, kind]]: loopback, link-local, unique local, multicast, Teredo, ...
#   (split into global unicast 2000::/3 and the rest)
tables := data.cordon.tables.network

# Dotted-quad IPv4 as cordon writes it. Anything else without a colon is malformed and denies:
# the first-octet index must never be skipped by an unusual spelling (010.0.0.1, 0x7f.1).
canonical_v4(ip) if regex.match(`^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$`, ip)

malformed_ips contains ip if {
	some ip in input.ips
	not contains(ip, ":")
	not canonical_v4(ip)
}

port_ok(ports) if count(ports) == 0

port_ok(ports) if input.port in ports

host_allowed if port_ok(hosts[input.host])

host_allowed if strings.any_suffix_match(input.host, any_port_suffixes)

host_allowed if {
	some s in port_suffixes
	endswith(input.host, s.suffix)
	input.port in s.ports
}

blocked_name if blocked_names[input.host]

blocked_name if endswith(input.host, ".localhost")

operator_allowed(ip) if {
	some range in allow_addresses
	net.cidr_contains(range, ip)
}

# One message per denied address (an address may sit in several overlapping ranges).
blocked_ips contains msg if {
	some ip in input.ips
	canonical_v4(ip)
	some entry in object.get(tables.v4_by_octet, split(ip, ".")[0], [])
	net.cidr_contains(entry[0], ip)
	not operator_allowed(ip)
	msg := sprintf("address %s is %s and always denied", [ip, entry[1]])
}

# IPv6: global unicast (2000::/3, nearly every public address) holds only Teredo, the
# documentation prefix and 6to4; everything else is checked only for addresses outside it.
global_v6(ip) if net.cidr_contains("2000::/3", ip)

v6_groups(ip) := tables.v6_global_groups if global_v6(ip)

v6_groups(ip) := tables.v6_other_groups if not global_v6(ip)

v6_native(ip) := tables.v6_global_native if global_v6(ip)

v6_native(ip) := tables.v6_other_native if not global_v6(ip)

blocked_ips contains msg if {
	some ip in input.ips
	contains(ip, ":")
	some group in v6_groups(ip)
	net.cidr_contains(group.range, ip)
	some entry in group.members
	net.cidr_contains(entry[0], ip)
	not operator_allowed(ip)
	msg := sprintf("address %s is %s and always denied", [ip, entry[1]])
}

blocked_ips contains msg if {
	some ip in input.ips
	contains(ip, ":")
	some entry in v6_native(ip)
	net.cidr_contains(entry[0], ip)
	not operator_allowed(ip)
	msg := sprintf("address %s is %s and always denied", [ip, entry[1]])
}

well_formed if {
	is_string(input.host)
	is_number(input.port)
	input.phase in {"connect", "request", "dns"}
	is_array(object.get(input, "ips", []))
	count(malformed_ips) == 0
}

default allow := false

allow if {
	well_formed
	host_allowed
	not blocked_name
	count(blocked_ips) == 0
}

reasons contains "input is missing host, port or phase, or has a malformed address" if not well_formed

reasons contains "no egress is allowed: the network allowlist is empty" if {
	well_formed
	count(hosts) + count(suffixes) == 0
}

reasons contains msg if {
	well_formed
	count(hosts) + count(suffixes) > 0
	not host_allowed
	msg := sprintf("host %s port %d is not in the network allowlist", [input.host, input.port])
}

reasons contains msg if {
	well_formed
	blocked_name
	msg := sprintf("host %s names the local machine or a metadata service", [input.host])
}

reasons contains msg if some msg in blocked_ips

# Reasons are only worked out for a deny: the allow path is the hot one.
decision := {"allow": true, "reasons": []} if allow

decision := {"allow": false, "reasons": reasons} if not allow
