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

allow_addresses := object.get(cfg, "allow_addresses", [])

# Names that reach cloud metadata services or the machine itself, whatever they resolve to.
blocked_names := {
	"localhost",
	"metadata",
	"metadata.google.internal",
	"metadata.goog",
	"instance-data",
	"instance-data.ec2.internal",
	"metadata.azure.com",
}

# Always denied unless an operator names the range in [network] allow_addresses. Each IPv4
# range is repeated in the IPv6 spellings that embed it (mapped, compatible, NAT64, 6to4), so
# an address cannot slip past in another form.
blocked_v4 := {
	"0.0.0.0/8": "unspecified",
	"10.0.0.0/8": "private",
	"100.64.0.0/10": "shared address space (CGNAT, cloud metadata)",
	"127.0.0.0/8": "loopback",
	"169.254.0.0/16": "link-local (cloud metadata)",
	"172.16.0.0/12": "private",
	"192.0.0.0/24": "IETF protocol assignments",
	"192.0.2.0/24": "documentation",
	"192.88.99.0/24": "6to4 relay anycast",
	"192.168.0.0/16": "private",
	"198.18.0.0/15": "benchmarking",
	"198.51.100.0/24": "documentation",
	"203.0.113.0/24": "documentation",
	"224.0.0.0/4": "multicast",
	"240.0.0.0/4": "reserved",
	"255.255.255.255/32": "broadcast",
}

blocked_v6 := {
	"::ffff:0.0.0.0/104": "unspecified, IPv4-mapped",
	"::0.0.0.0/104": "unspecified, IPv4-compatible",
	"64:ff9b::0.0.0.0/104": "unspecified, NAT64",
	"2002::/24": "unspecified, 6to4",
	"::ffff:10.0.0.0/104": "private, IPv4-mapped",
	"::10.0.0.0/104": "private, IPv4-compatible",
	"64:ff9b::10.0.0.0/104": "private, NAT64",
	"2002:a00::/24": "private, 6to4",
	"::ffff:100.64.0.0/106": "shared address space (CGNAT, cloud metadata), IPv4-mapped",
	"::100.64.0.0/106": "shared address space (CGNAT, cloud metadata), IPv4-compatible",
	"64:ff9b::100.64.0.0/106": "shared address space (CGNAT, cloud metadata), NAT64",
	"2002:6440::/26": "shared address space (CGNAT, cloud metadata), 6to4",
	"::ffff:127.0.0.0/104": "loopback, IPv4-mapped",
	"::127.0.0.0/104": "loopback, IPv4-compatible",
	"64:ff9b::127.0.0.0/104": "loopback, NAT64",
	"2002:7f00::/24": "loopback, 6to4",
	"::ffff:169.254.0.0/112": "link-local (cloud metadata), IPv4-mapped",
	"::169.254.0.0/112": "link-local (cloud metadata), IPv4-compatible",
	"64:ff9b::169.254.0.0/112": "link-local (cloud metadata), NAT64",
	"2002:a9fe::/32": "link-local (cloud metadata), 6to4",
	"::ffff:172.16.0.0/108": "private, IPv4-mapped",
	"::172.16.0.0/108": "private, IPv4-compatible",
	"64:ff9b::172.16.0.0/108": "private, NAT64",
	"2002:ac10::/28": "private, 6to4",
	"::ffff:192.0.0.0/120": "IETF protocol assignments, IPv4-mapped",
	"::192.0.0.0/120": "IETF protocol assignments, IPv4-compatible",
	"64:ff9b::192.0.0.0/120": "IETF protocol assignments, NAT64",
	"2002:c000::/40": "IETF protocol assignments, 6to4",
	"::ffff:192.0.2.0/120": "documentation, IPv4-mapped",
	"::192.0.2.0/120": "documentation, IPv4-compatible",
	"64:ff9b::192.0.2.0/120": "documentation, NAT64",
	"2002:c000:200::/40": "documentation, 6to4",
	"::ffff:192.88.99.0/120": "6to4 relay anycast, IPv4-mapped",
	"::192.88.99.0/120": "6to4 relay anycast, IPv4-compatible",
	"64:ff9b::192.88.99.0/120": "6to4 relay anycast, NAT64",
	"2002:c058:6300::/40": "6to4 relay anycast, 6to4",
	"::ffff:192.168.0.0/112": "private, IPv4-mapped",
	"::192.168.0.0/112": "private, IPv4-compatible",
	"64:ff9b::192.168.0.0/112": "private, NAT64",
	"2002:c0a8::/32": "private, 6to4",
	"::ffff:198.18.0.0/111": "benchmarking, IPv4-mapped",
	"::198.18.0.0/111": "benchmarking, IPv4-compatible",
	"64:ff9b::198.18.0.0/111": "benchmarking, NAT64",
	"2002:c612::/31": "benchmarking, 6to4",
	"::ffff:198.51.100.0/120": "documentation, IPv4-mapped",
	"::198.51.100.0/120": "documentation, IPv4-compatible",
	"64:ff9b::198.51.100.0/120": "documentation, NAT64",
	"2002:c633:6400::/40": "documentation, 6to4",
	"::ffff:203.0.113.0/120": "documentation, IPv4-mapped",
	"::203.0.113.0/120": "documentation, IPv4-compatible",
	"64:ff9b::203.0.113.0/120": "documentation, NAT64",
	"2002:cb00:7100::/40": "documentation, 6to4",
	"::ffff:224.0.0.0/100": "multicast, IPv4-mapped",
	"::224.0.0.0/100": "multicast, IPv4-compatible",
	"64:ff9b::224.0.0.0/100": "multicast, NAT64",
	"2002:e000::/20": "multicast, 6to4",
	"::ffff:240.0.0.0/100": "reserved, IPv4-mapped",
	"::240.0.0.0/100": "reserved, IPv4-compatible",
	"64:ff9b::240.0.0.0/100": "reserved, NAT64",
	"2002:f000::/20": "reserved, 6to4",
	"::ffff:255.255.255.255/128": "broadcast, IPv4-mapped",
	"::255.255.255.255/128": "broadcast, IPv4-compatible",
	"64:ff9b::255.255.255.255/128": "broadcast, NAT64",
	"2002:ffff:ffff::/48": "broadcast, 6to4",
	"::/128": "unspecified",
	"::1/128": "loopback",
	"fe80::/10": "link-local",
	"fec0::/10": "site-local (deprecated)",
	"fc00::/7": "unique local (private, cloud metadata)",
	"ff00::/8": "multicast",
	"100::/64": "discard-only",
	"2001::/32": "Teredo (embeds an IPv4 address)",
	"2001:db8::/32": "documentation",
	"64:ff9b:1::/48": "local-use NAT64",
}

port_ok(ports) if count(ports) == 0

port_ok(ports) if input.port in ports

host_allowed if port_ok(hosts[input.host])

host_allowed if {
	some s in suffixes
	endswith(input.host, s.suffix)
	port_ok(s.ports)
}

blocked_name if input.host in blocked_names

blocked_name if endswith(input.host, ".localhost")

operator_allowed(ip) if {
	some range in allow_addresses
	net.cidr_contains(range, ip)
}

# One message per denied address (an address may sit in several overlapping ranges).
blocked_ips contains msg if {
	some ip in input.ips
	not contains(ip, ":")
	some range, kind in blocked_v4
	net.cidr_contains(range, ip)
	not operator_allowed(ip)
	msg := sprintf("address %s is %s and always denied", [ip, kind])
}

blocked_ips contains msg if {
	some ip in input.ips
	contains(ip, ":")
	some range, kind in blocked_v6
	net.cidr_contains(range, ip)
	not operator_allowed(ip)
	msg := sprintf("address %s is %s and always denied", [ip, kind])
}

well_formed if {
	is_string(input.host)
	is_number(input.port)
	input.phase in {"connect", "request", "dns"}
	is_array(object.get(input, "ips", []))
}

default allow := false

allow if {
	well_formed
	host_allowed
	not blocked_name
	count(blocked_ips) == 0
}

reasons contains "input is missing host, port or phase" if not well_formed

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

decision := {"allow": allow, "reasons": reasons}
