// IPv6 addresses as the control plane speaks them: parsing (strict, RFC 4291
// text forms through inet_pton; no zone, no brackets), printing (RFC 5952
// canonical form through inet_ntop), the rule for which addresses a
// listener or a speaker may have, and the "[ADDRESS]:PORT" endpoint syntax
// that the API's paths and stentorctl share with IPv4's "ADDRESS:PORT".
//
// A choice made here (docs/api.md): an IPv6 peer is one global or
// unique-local unicast host. Refused, each with its reason: the unspecified
// address, loopback, multicast, link-local (with or without a zone: the
// relay keeps no per-link scope for listeners), IPv4-mapped (give the IPv4
// address: the relay is dual stack and sends IPv4 as IPv4), IPv4-translated
// (::ffff:0:0:0/96), the deprecated IPv4-compatible form, and NAT64
// (64:ff9b::/96) or 6to4 (2002::/16) of an IPv4 address the IPv4 rules
// refuse (ipv6_special).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ipv6.h"   // ipv6_addr, parse_ipv6, format_ipv6, ipv6_special (the network layer's)

namespace stentor::control {

using ipv6_bytes = ipv6_addr;

// Why an IPv6 address may not be a listener or a speaker, or nullopt.
std::optional<std::string> ipv6_peer_refusal(const ipv6_bytes& a);

// An address in text that may be IPv4 or IPv6: sets exactly one of *v4
// (host order) and *v6 and returns true, or returns false with *why saying
// what is wrong ("... is not an IPv4 or IPv6 address", a zone given). The
// usability rules are not applied here (see ipv6_peer_refusal,
// check_listener_ip).
bool parse_ip_any(std::string_view s, std::optional<uint32_t>* v4, std::optional<ipv6_bytes>* v6, std::string* why);

// "198.18.0.5:6000" or "[2001:db8::5]:6000" (port 1..65535), else false
// and *why. Exactly one of *v4 and *v6 is set on success.
bool parse_endpoint_any(std::string_view s, std::optional<uint32_t>* v4, std::optional<ipv6_bytes>* v6,
                        unsigned* port, std::string* why);

// "[2001:db8::5]:6000"
std::string format_endpoint6(const ipv6_bytes& a, unsigned port);

// Folded one's-complement sum of the eight address words and the port: the
// UDP pseudo-header delta a dp_listener6 carries (the fan-out adds it to
// the template's sum).
uint16_t ipv6_listener_udp_sum(const ipv6_bytes& a, unsigned port);

}  // namespace stentor::control
