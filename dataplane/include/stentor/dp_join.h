// The listener join path as both planes see it (docs/join.md).
//
//   listener --STUN Binding Request--> RX lcore (join.cc): cheap checks, the
//   verification budget; then, per burst on the same lcore or on a join
//   lcore (dataplane.join_lcores), token tag and MESSAGE-INTEGRITY (at most
//   one MAC for a forged token) --join_ring--> control plane's join desk
//   (control/join_desk.cc): consent, one token one address, admission, the
//   listener table --join_reply_ring--> ARP-owner lcore: sends the response.
//
// The request travels as its own mbuf: its verifier writes what it verified
// (dp_join_request) into the mbuf's headroom, the desk rewrites the frame
// into the response in place and hands the same mbuf back. Nothing is
// allocated per join; a request the desk cannot take is dropped and counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <rte_mbuf.h>

namespace stentor::dp {

inline constexpr size_t join_password_len = 22;   // base64url of 16 bytes (join_token.h)

// What the RX lcore established about one authenticated request. Written
// into the headroom in front of the frame (rte_pktmbuf_headroom() >= its
// size is checked before); the frame itself is untouched.
//
// Either family (issue 15): `src` is where it came from (the listener, or
// its NAT), 16 bytes in wire order; an IPv4 source as the IPv4-mapped
// address ::ffff:a.b.c.d (RFC 4291 2.5.5.2), which no IPv6 request can
// carry (the validator drops mapped sources, parse.cc), so one key names a
// peer of either family.
struct dp_join_request {
    uint64_t nonce;                    // token identity: (key_id, nonce)
    uint32_t session_id;               // from the token (= the session of the port it was sent to)
    uint32_t expiry;                   // token expiry, unix seconds
    uint8_t src[16];                   // source address, IPv4 as ::ffff:a.b.c.d
    uint16_t src_port_be;
    uint16_t stun_off;                 // STUN message offset in the frame
    uint16_t stun_len;                 // STUN message length (a response is never longer)
    uint16_t cookie_off;               // STENTOR-COOKIE's value in the STUN message, as parse_request found it (0: none)
    uint8_t key_id;
    uint8_t tier;
    uint8_t leave;                     // STENTOR-LEAVE present: remove me
    uint8_t port;                      // port index it arrived on (the response leaves there)
    uint8_t ipv6;                      // 1: the frame is Ethernet/IPv6/UDP (src is a real IPv6 address)
    char password[join_password_len];  // the MESSAGE-INTEGRITY key the response is signed with
    uint8_t pad_[5];
};
static_assert(sizeof(dp_join_request) == 72);

// The IPv4-mapped form of an IPv4 address (network order) as it sits in
// dp_join_request::src.
inline void join_src_v4(uint8_t out[16], uint32_t ip_be) noexcept {
    static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(out, prefix, sizeof prefix);
    std::memcpy(out + 12, &ip_be, 4);
}
inline uint32_t join_src_ipv4_be(const dp_join_request& r) noexcept {
    uint32_t ip;
    std::memcpy(&ip, r.src + 12, 4);
    return ip;
}
static_assert(sizeof(dp_join_request) <= RTE_PKTMBUF_HEADROOM);

// Copied, not cast: a PMD may start the frame at any offset. The caller
// checks rte_pktmbuf_headroom(m) >= sizeof(dp_join_request) first.
inline void store_join_request(rte_mbuf* m, const dp_join_request& r) noexcept {
    std::memcpy(rte_pktmbuf_mtod(m, char*) - sizeof r, &r, sizeof r);
}
inline dp_join_request load_join_request(const rte_mbuf* m) noexcept {
    dp_join_request r;
    std::memcpy(&r, rte_pktmbuf_mtod(m, const char*) - sizeof r, sizeof r);
    return r;
}

}  // namespace stentor::dp
