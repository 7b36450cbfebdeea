package cordon.network_test

import rego.v1

import data.cordon.network

config := {
	"hosts": {"github.com": [], "pypi.org": [443]},
	"suffixes": [{"suffix": ".githubusercontent.com", "ports": []}],
	"any_port_suffixes": [".githubusercontent.com"],
	"port_suffixes": [{"suffix": ".pythonhosted.org", "ports": [443]}],
	"allow_addresses": [],
}

conn(host, port, ips) := {"phase": "connect", "host": host, "port": port, "ips": ips}

decide(inp) := d if {
	d := network.decision with input as inp with data.cordon.config as {"network": config}
}

test_empty_allowlist_denies_everything if {
	d := network.decision with input as conn("github.com", 443, ["140.82.112.3"])
		with data.cordon.config as {"network": {}}
	not d.allow
	"no egress is allowed: the network allowlist is empty" in d.reasons
}

test_listed_host_allowed if decide(conn("github.com", 443, ["140.82.112.3"])).allow

test_unlisted_host_denied if {
	d := decide(conn("evil.example", 443, ["93.184.216.34"]))
	not d.allow
	"host evil.example port 443 is not in the network allowlist" in d.reasons
}

test_port_restriction if {
	decide(conn("pypi.org", 443, ["151.101.0.223"])).allow
	not decide(conn("pypi.org", 80, ["151.101.0.223"])).allow
}

test_wildcard_matches_subdomains_only if {
	decide(conn("raw.githubusercontent.com", 443, ["185.199.108.133"])).allow
	decide(conn("a.b.githubusercontent.com", 443, ["185.199.108.133"])).allow
	not decide(conn("githubusercontent.com", 443, ["185.199.108.133"])).allow
	not decide(conn("evilgithubusercontent.com", 443, ["185.199.108.133"])).allow
}

test_lookalike_of_exact_host_denied if {
	not decide(conn("evilgithub.com", 443, ["1.2.3.4"])).allow
	not decide(conn("github.com.evil.example", 443, ["1.2.3.4"])).allow
}

test_dns_phase_decides_on_host if {
	decide({"phase": "dns", "host": "github.com", "port": 443}).allow
	not decide({"phase": "dns", "host": "evil.example", "port": 443}).allow
}

test_blocked_addresses_deny_even_listed_hosts if {
	every ip in [
		"169.254.169.254", "10.0.0.1", "100.64.0.1", "127.0.0.1", "172.16.5.4", "192.168.1.1",
		"0.0.0.0", "224.0.0.1", "255.255.255.255", "100.100.100.200",
		"::1", "::", "fe80::1", "fd00:ec2::254", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1",
		"64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2002:a9fe:a9fe::1", "2001:0:4136:e378::1",
	] {
		d := decide(conn("github.com", 443, [ip]))
		not d.allow
	}
}

test_one_bad_address_among_good_ones_denies if {
	not decide(conn("github.com", 443, ["140.82.112.3", "10.1.2.3"])).allow
}

test_public_ipv6_allowed if decide(conn("github.com", 443, ["2606:50c0:8000::154"])).allow

test_reason_names_the_address_kind if {
	d := decide(conn("github.com", 443, ["169.254.169.254"]))
	"address 169.254.169.254 is link-local (cloud metadata) and always denied" in d.reasons
}

test_operator_can_allow_a_range if {
	cfg := object.union(config, {"allow_addresses": ["127.0.0.0/8"], "hosts": {"localhost.test": []}})
	d := network.decision with input as conn("localhost.test", 8080, ["127.0.0.1"])
		with data.cordon.config as {"network": cfg}
	d.allow
	d2 := network.decision with input as conn("localhost.test", 8080, ["10.0.0.1"])
		with data.cordon.config as {"network": cfg}
	not d2.allow
}

test_metadata_and_localhost_names_denied if {
	cfg := object.union(config, {"hosts": {"metadata.google.internal": [], "localhost": [], "a.localhost": []}})
	every h in ["metadata.google.internal", "localhost", "a.localhost"] {
		d := network.decision with input as conn(h, 80, []) with data.cordon.config as {"network": cfg}
		not d.allow
	}
}

test_ip_literal_host_must_be_listed if not decide(conn("140.82.112.3", 443, ["140.82.112.3"])).allow

test_malformed_input_denied if {
	not decide({"host": "github.com"}).allow
	not decide({"phase": "connect", "port": 443}).allow
	not decide({"phase": "teleport", "host": "github.com", "port": 443}).allow
}

test_noncanonical_ipv4_spellings_denied if {
	every ip in ["010.0.0.1", "0x7f.0.0.1", "127.1", "2130706433", " 127.0.0.1"] {
		d := decide(conn("github.com", 443, [ip]))
		not d.allow
	}
}

test_every_octet_of_wide_ranges_is_indexed if {
	every ip in ["224.0.0.1", "231.1.2.3", "239.255.255.255", "240.0.0.1", "250.1.1.1", "255.255.255.255"] {
		not decide(conn("github.com", 443, [ip])).allow
	}
}

test_port_restricted_wildcard if {
	decide(conn("files.pythonhosted.org", 443, ["151.101.0.223"])).allow
	not decide(conn("files.pythonhosted.org", 80, ["151.101.0.223"])).allow
	not decide(conn("pythonhosted.org", 443, ["151.101.0.223"])).allow
}
