// libFuzzer target for the neighbour state machine (dataplane/neigh_fsm.h):
// what ARP replies, the owner's visits and the passing of time do to the
// entries that tell the fan-out where a listener is (issue 10 item 1).
//
// Input: a header (TSC rate, re-probe time, request budget, the TSC value
// the run starts at, four entries: pinned or learnt, port, used or not),
// then events, one byte each plus an argument byte for some: replies
// offering one of four MACs for an entry (on its port or the other one), the
// owner visiting one entry or all of them (a request goes out when one is
// due and the budget, the real bucket_take(), allows), time passing by a few
// milliseconds, by a power of two up to 2^62 cycles, or exactly to a timing
// edge of an entry (its window's end, the retry, the re-probe time, plus or
// minus one cycle). The TSC starts anywhere, 2^64 - a few ms included, so
// the run crosses the wrap.
//
// Beside the state machine runs a model of what it promises, written from
// the rules in docs/security.md, not from its code. Events are judged in
// real time (a 128-bit-free count from 0, kept below 2^62 cycles), the state
// machine sees the wrapping TSC. The target aborts when:
//  - a MAC comes into use that did not arrive in a reply, on the entry's
//    port, at most `window` after a request the relay sent; or a reply
//    window that brought two MACs resolves the entry;
//  - a known neighbour's MAC changes other than at the close of a window
//    that brought the new MAC alone, right after a window that offered it as
//    a candidate while the old MAC was in use (the fresh, confirming probe);
//    or such a window does not switch;
//  - a MAC in use is dropped other than by a second MAC in its resolving
//    window (conflict) or after arp_max_unanswered windows without any reply
//    since it last answered and `reachable` has passed (expiry);
//  - a pinned neighbour changes, is asked for, or learns; an unused entry is
//    asked for;
//  - a request goes out while its entry's window is open, sooner than
//    `retry` after the previous one unless it confirms a candidate, or for a
//    neighbour confirmed less than `reachable` ago; or a due request is not
//    asked for (the owner must keep asking for unresolved and stale entries);
//  - a reply's verdict disagrees with the model (one in its window not
//    heard, one outside it not counted late or unsolicited), a step moves a
//    counter by other than the model's amount (or down), or the state
//    machine moves a counter that is not its own;
//  - the request budget grants more than burst + rate x time, or refuses
//    after a second without a request.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "neigh_fsm.h"

using namespace stentor::dp;

namespace {

constexpr unsigned nb_entries = 4;
constexpr unsigned nb_macs = 4;
constexpr int none = -1;
constexpr uint64_t max_span = uint64_t{1} << 62;   // real time a run may cover (~66 years at 2.2 GHz)

bool g_trace = std::getenv("STENTOR_FUZZ_TRACE") != nullptr;

[[noreturn]] void finding(const char* what, unsigned entry = 0) {
    std::fprintf(stderr, "fuzz_arp: contract broken (entry %u): %s\n", entry, what);
    std::abort();
}

void check(bool ok, const char* what, unsigned entry = 0) {
    if (!ok) finding(what, entry);
}

// The MACs replies offer, and the one pinned entries use (never offered).
const uint8_t pool[nb_macs + 1][6] = {
    {0x02, 0x00, 0x00, 0x00, 0x0a, 0x01}, {0x02, 0xba, 0xd0, 0x00, 0x00, 0x01}, {0x02, 0xba, 0xd0, 0x00, 0x00, 0x02},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, {0x02, 0x00, 0x00, 0x00, 0x99, 0x99}};
constexpr int pinned_mac = nb_macs;

struct reader {
    const uint8_t* p;
    size_t n;
    bool empty() const { return n == 0; }
    uint8_t byte() {
        if (n == 0) return 0;
        --n;
        return *p++;
    }
    uint64_t u64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v = v << 8 | byte();
        return v;
    }
};

// One request of the relay and what answered it, in the model's terms.
struct window_rec {
    uint64_t sent = 0;         // real time
    uint8_t macs = 0;          // MACs heard in it (bit per pool index)
    uint8_t cand_macs = 0;     // ... of them, offered while another MAC was in use (candidates)
    int last_cand = none;      // the last candidate offered
    bool confirming = false;   // sent to confirm the previous window's candidate
    bool closed = false;       // its end accounted for (quiet windows)
    bool judged = false;       // a confirming window's outcome checked
    bool refused = false;      // a confirming window that brought a MAC other than the candidate
};

struct model_entry {
    bool pinned = false;
    bool unused = false;       // ip 0: the slot is free
    uint16_t port = 0;
    unsigned nb_requests = 0;
    window_rec cur, prev;      // the latest request's window and the one before
    bool resolved_in_cur = false;
    bool conflict_in_cur = false;
    int in_use = none;         // the MAC the fan-out reads, as last seen
    uint64_t last_confirm = 0; // real time the MAC in use last answered (or was installed)
    unsigned quiet = 0;        // closed windows without any reply since then
};

struct bucket_model {
    uint64_t rate, burst;
    uint64_t tokens, last_tsc;   // the real bucket (worker::arp_req_tb)
    uint64_t grants = 0;
    bool attempted = false;
    uint64_t last_attempt = 0;   // real time
};

struct run {
    uint64_t hz;
    neigh_timing t;
    uint64_t t0;                 // the TSC at real time 0
    uint64_t real = 0;
    dp_neigh fsm[nb_entries];
    model_entry m[nb_entries];
    bucket_model b;
    lcore_counters c{};

    uint64_t now() const { return t0 + real; }   // wraps past 2^64

    int mac_in_use(unsigned i) const {
        const uint64_t w = fsm[i].mac_word.load(std::memory_order_relaxed);
        if (!(w & neigh_valid)) {
            check(w == 0, "an invalid mac_word that is not 0", i);
            return none;
        }
        for (int k = 0; k <= static_cast<int>(nb_macs); ++k)
            if (w == neigh_mac_word(pool[k])) return k;
        finding("a MAC in use that nobody offered", i);
    }

    bool window_open(unsigned i) const { return m[i].nb_requests > 0 && real - m[i].cur.sent <= t.window; }

    // Windows that ended by now: one without any reply is quiet.
    void account(unsigned i) {
        model_entry& e = m[i];
        if (e.nb_requests == 0 || e.cur.closed || real - e.cur.sent <= t.window) return;
        e.cur.closed = true;
        if (e.cur.macs == 0) ++e.quiet;
    }

    void advance(uint64_t dt) {
        if (dt > max_span - real) return;
        real += dt;
        if (g_trace) std::fprintf(stderr, "  t=%llu (+%llu, tsc %llu)\n", (unsigned long long)real,
                                  (unsigned long long)dt, (unsigned long long)now());
    }

    void reply(unsigned i, int mac, bool wrong_port);
    void visit(unsigned i);
    bool take_token();
};

// The counters the state machine moves. Each step moves them by exactly
// what the model says (a decrease shows as a huge difference); every other
// counter must still be 0 when the input ends (check_untouched()).
struct fsm_counts {
    uint64_t unsolicited, late, conflict, changed, confirmed, kept, expired, in_conflict;
};

fsm_counts counts_of(const lcore_counters& c) {
    return {c.drop(drop_reason::arp_unsolicited), c.drop(drop_reason::arp_late), c.neigh_conflict,
            c.neigh_mac_changed, c.neigh_mac_confirmed, c.neigh_mac_kept, c.neigh_expired,
            c.drop(drop_reason::arp_conflict)};
}

struct deltas {
    uint64_t unsolicited = 0, late = 0, conflict = 0, changed_max = 0, confirmed = 0, kept = 0, expired = 0,
             in_conflict = 0;
};

void check_deltas(const fsm_counts& a, const lcore_counters& now, const deltas& d, unsigned i) {
    const fsm_counts b = counts_of(now);
    check(b.unsolicited - a.unsolicited == d.unsolicited, "arp_unsolicited moved by the wrong amount", i);
    check(b.late - a.late == d.late, "arp_late moved by the wrong amount", i);
    check(b.conflict - a.conflict == d.conflict, "neigh_conflict moved by the wrong amount", i);
    check(b.changed - a.changed <= d.changed_max, "neigh_mac_changed moved unexpectedly (or went down)", i);
    check(b.confirmed - a.confirmed == d.confirmed, "neigh_mac_confirmed moved by the wrong amount", i);
    check(b.kept - a.kept == d.kept, "neigh_mac_kept moved by the wrong amount", i);
    check(b.expired - a.expired == d.expired, "neigh_expired moved by the wrong amount", i);
    check(b.in_conflict - a.in_conflict == d.in_conflict, "arp_conflict moved by the wrong amount", i);
}

void check_untouched(const lcore_counters& c) {
    const fsm_counts own = counts_of(c);
    uint64_t all = 0;
    c.for_each_scalar([&](const char*, const char*, uint64_t v) { all += v; });
    for (uint64_t v : c.drops) all += v;
    for (uint64_t v : c.tier_misses) all += v;
    for (std::size_t k = 0; k < max_ports; ++k) all += c.port_rx[k] + c.port_tx[k];
    const uint64_t mine =
        own.unsolicited + own.late + own.conflict + own.changed + own.confirmed + own.kept + own.expired +
        own.in_conflict;
    check(all == mine, "a counter outside the state machine's moved");
}

void run::reply(unsigned i, int mac, bool wrong_port) {
    model_entry& e = m[i];
    account(i);
    const uint16_t port = wrong_port ? static_cast<uint16_t>(e.port ^ 1) : e.port;
    const int before = mac_in_use(i);
    const fsm_counts c0 = counts_of(c);
    const reply_verdict v = neigh_on_reply(fsm[i], port, neigh_mac_word(pool[mac]), now(), t, c);
    const int after = mac_in_use(i);
    if (g_trace)
        std::fprintf(stderr, "reply entry %u mac %d%s: verdict %d, in use %d -> %d\n", i, mac,
                     wrong_port ? " (other port)" : "", static_cast<int>(v), before, after);

    deltas d;
    const bool asked = !e.pinned && !wrong_port && e.nb_requests > 0;
    const bool heard = asked && window_open(i);
    if (!asked) {
        check(v == reply_verdict::unsolicited, "a reply nobody asked for is not counted unsolicited", i);
        d.unsolicited = 1;
    } else if (!heard) {
        check(v == reply_verdict::late, "a reply after its window is not counted late", i);
        d.late = 1;
    } else {
        check(v != reply_verdict::unsolicited && v != reply_verdict::late, "a reply inside our window is not heard", i);
    }

    if (heard && e.conflict_in_cur) {
        check(v == reply_verdict::in_conflict, "a reply in a window with two MACs is believed", i);
        d.in_conflict = 1;
    } else if (heard && before == none) {
        // The first answer to our question resolves the entry at once.
        check(e.cur.macs == 0, "an unresolved entry in a window that brought a MAC already", i);
        check(v == reply_verdict::learnt && after == mac, "the first reply to our request did not resolve the entry", i);
        e.resolved_in_cur = true;
        e.last_confirm = real;
        e.quiet = 0;
    } else if (heard && e.resolved_in_cur && mac != before) {
        check(v == reply_verdict::conflict && after == none, "a second MAC in the resolving window is not a conflict", i);
        d.conflict = 1;
        e.conflict_in_cur = true;
        e.resolved_in_cur = false;
    } else if (heard && mac == before) {
        check(v == reply_verdict::confirmed, "the MAC in use answered and is not confirmed", i);
        e.last_confirm = real;
        e.quiet = 0;
    } else if (heard && e.cur.confirming && (mac != e.prev.last_cand || e.cur.refused)) {
        // Confirming a candidate, the window brings yet another MAC: no change.
        check(v == reply_verdict::refused, "a third MAC in the confirming window is not refused", i);
        d.changed_max = e.cur.refused ? 0 : 1;
        e.cur.refused = true;
    } else if (heard) {
        check(v == reply_verdict::candidate, "a different MAC for a known neighbour is not a candidate", i);
        d.changed_max = 1;
        e.cur.cand_macs |= static_cast<uint8_t>(1u << mac);
        e.cur.last_cand = mac;
    }
    if (heard) e.cur.macs |= static_cast<uint8_t>(1u << mac);

    check(before == after || v == reply_verdict::learnt || v == reply_verdict::conflict,
          "a reply changed the MAC in use other than by resolving or a conflict", i);
    check_deltas(c0, c, d, i);
    e.in_use = after;
}

bool run::take_token() {
    const bool quiet_second = !b.attempted || real - b.last_attempt >= hz;
    const bool ok = bucket_take(b.tokens, b.last_tsc, now(), hz, b.rate, b.burst);
    b.attempted = true;
    b.last_attempt = real;
    if (quiet_second) check(ok, "the request budget refused after a second without requests");
    if (ok) {
        ++b.grants;
        // burst + rate x time, exactly: real < 2^62 and rate <= 2^12.
        const unsigned __int128 allowed =
            b.burst + static_cast<unsigned __int128>(real) * b.rate / static_cast<unsigned __int128>(hz);
        check(b.grants <= allowed, "the request budget granted more than burst + rate x time");
    }
    return ok;
}

void run::visit(unsigned i) {
    model_entry& e = m[i];
    account(i);
    const int before = mac_in_use(i);
    const fsm_counts c0 = counts_of(c);
    const bool due = neigh_visit(fsm[i], now(), t, c);
    const int after = mac_in_use(i);

    // What the rules say this visit does.
    deltas d;
    int expect = before;
    uint64_t last_confirm = e.last_confirm;
    unsigned quiet = e.quiet;
    if (e.cur.confirming && e.cur.closed && !e.cur.judged) {
        // The confirming window has ended: the candidate alone answered ->
        // switch; the MAC in use answered -> kept.
        e.cur.judged = true;
        check(before != none, "model: a confirming window for an unresolved entry", i);
        if (e.prev.last_cand != none && e.cur.macs == (1u << e.prev.last_cand)) {
            expect = e.prev.last_cand;
            last_confirm = e.cur.sent;
            quiet = 0;
            d.confirmed = 1;
        }
        if (e.cur.macs & (1u << before)) d.kept = 1;
    }
    // A window that offered a candidate (and was not itself confirming one)
    // asks for the confirming request at once.
    const bool confirm_pending = e.nb_requests > 0 && e.cur.closed && !e.cur.confirming && e.cur.cand_macs != 0;
    if (expect != none && !e.pinned && !confirm_pending && real - last_confirm >= t.reachable &&
        quiet >= arp_max_unanswered) {
        expect = none;
        quiet = 0;
        d.expired = 1;
    }
    if (g_trace)
        std::fprintf(stderr, "visit entry %u: due %d, in use %d -> %d (model %d), quiet %u\n", i, due, before, after,
                     expect, e.quiet);

    if (after != before) {
        check(!e.pinned, "a pinned neighbour changed", i);
        check(before != none, "a visit resolved an entry (only replies may)", i);
    }
    if (after != none && after != before) {
        // The change of a known neighbour: only at the close of a confirming
        // window that brought the candidate and not the old MAC.
        check(e.nb_requests >= 2 && e.cur.confirming && e.cur.closed, "a MAC change without a confirming probe", i);
        check(e.prev.cand_macs & (1u << after), "a MAC change to a MAC not offered before the confirming probe", i);
        check(e.cur.macs == (1u << after), "a MAC change although the confirming probe did not bring that MAC alone", i);
        check(!(e.cur.macs & (1u << before)), "a MAC change although the old MAC answered the confirming probe", i);
    }
    if (after == none && before != none)
        check(e.quiet >= arp_max_unanswered && real - e.last_confirm >= t.reachable,
              "a MAC in use dropped before it went unanswered long enough", i);
    check(after == expect, "the visit's outcome differs from the model (switch, kept or expiry)", i);
    e.last_confirm = last_confirm;
    e.quiet = quiet;
    e.in_use = after;

    // Is a request due?
    bool want;
    if (e.pinned || e.unused || window_open(i)) want = false;
    else if (confirm_pending) want = true;
    else if (after == none) want = e.nb_requests == 0 || real - e.cur.sent >= t.retry;
    else want = real - last_confirm >= t.reachable && real - e.cur.sent >= t.retry;
    if (due != want) {
        if (due) finding("a request is due that the rules do not allow (window open, too soon, pinned or fresh)", i);
        finding("no request is due although the entry is unresolved or stale and the retry time passed", i);
    }
    check_deltas(c0, c, d, i);
    if (!due || !take_token()) return;
    neigh_request_sent(fsm[i], now());
    e.prev = e.cur;
    e.cur = window_rec{};
    // A request at TSC 0 counts from the cycle before (0 means "never asked").
    e.cur.sent = now() != 0 ? real : real - 1;
    e.cur.confirming = confirm_pending;
    e.resolved_in_cur = false;
    e.conflict_in_cur = false;
    ++e.nb_requests;
    if (g_trace)
        std::fprintf(stderr, "  request %u for entry %u%s\n", e.nb_requests, i, e.cur.confirming ? " (confirming)" : "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // A few dozen events reach every state; past 1 KiB an input only costs
    // time (each event copies and compares the lcore's counters).
    reader in{data, size < 1024 ? size : 1024};
    run r;

    static constexpr uint64_t hzs[8] = {1, 7, 1000, 1000000, 1000000000, 2194917000, 3999999999, 2500000000};
    static constexpr uint32_t reachables[4] = {0, 700, 1, 1000};
    const uint8_t h = in.byte();
    r.hz = hzs[h & 7];
    r.t = neigh_timing_of(r.hz, reachables[(h >> 3) & 3]);
    // The request budget: the relay's own, and small ones the input can
    // empty (the model has four entries, the relay's burst is 256).
    static constexpr uint64_t rates[4][2] = {{arp_request_rate, arp_request_burst}, {1000, 1}, {8, 1}, {3, 2}};
    r.b.rate = rates[(h >> 5) & 3][0];
    r.b.burst = rates[(h >> 5) & 3][1];
    const uint64_t ms = r.hz >= 1000 ? r.hz / 1000 : 1;
    switch (in.byte() & 7) {
    case 0: r.t0 = 1; break;
    case 1: r.t0 = 0 - 3 * ms; break;              // wraps 3 ms in
    case 2: r.t0 = 0 - r.t.window; break;           // wraps at the first window's end
    case 3: r.t0 = 0 - r.t.retry; break;
    case 4: r.t0 = uint64_t{1} << 63; break;
    case 5: r.t0 = 0 - 1; break;
    default: r.t0 = in.u64(); break;
    }
    const uint8_t cfg = in.byte();
    for (unsigned i = 0; i < nb_entries; ++i) {
        const unsigned bits = (cfg >> (2 * i)) & 3;   // 0, 1: learnt on port 0, 1; 2: pinned; 3: unused (1 in 4 inputs)
        dp_neigh& f = r.fsm[i];
        std::memset(static_cast<void*>(&f), 0, sizeof f);   // as control/state.cc hands a fresh entry over
        f.ip_be = 0x0a000001u + i;
        f.port_id = static_cast<uint16_t>(bits & 1);
        r.m[i].port = f.port_id;
        if (bits == 2) {
            f.flags = neigh_static;
            f.mac_word.store(neigh_mac_word(pool[pinned_mac]), std::memory_order_relaxed);
            r.m[i].pinned = true;
            r.m[i].in_use = pinned_mac;
        } else if (bits == 3 && i == 3) {
            f.ip_be = 0;
            r.m[i].unused = true;
        }
    }
    r.b.tokens = r.b.burst;
    r.b.last_tsc = r.t0;

    while (!in.empty()) {
        const uint8_t op = in.byte();
        const unsigned i = (op >> 3) & 3;
        switch (op & 7) {
        case 0: r.advance((uint64_t{in.byte()} + 1) * ms); break;
        case 1: {   // exactly to a timing edge of entry i
            const model_entry& e = r.m[i];
            const uint64_t k = op >> 5;
            uint64_t at;
            if (k < 4) {
                if (e.nb_requests == 0) break;
                const uint64_t span[4] = {r.t.window, r.t.window + 1, r.t.retry - 1, r.t.retry};
                at = e.cur.sent + span[k];
            } else if (k < 6) {
                at = e.last_confirm + r.t.reachable - (k == 4 ? 1 : 0);
            } else {
                at = r.b.last_attempt + r.hz - (k == 6 ? 1 : 0);
            }
            if (at > r.real) r.advance(at - r.real);
            break;
        }
        case 2: r.advance(uint64_t{1} << (in.byte() % 63)); break;
        case 3: r.advance(1); break;
        case 4: r.visit(i); break;
        case 5:
            for (unsigned k = 0; k < nb_entries; ++k) r.visit(k);
            break;
        default: {   // a reply: op bits 3-4 the entry, 5-6 the MAC, 7 the other port
            r.reply(i, (op >> 5) & 3, (op & 1) && (op >> 7));
            break;
        }
        }
        for (unsigned k = 0; k < nb_entries; ++k)
            if (r.m[k].pinned) check(r.mac_in_use(k) == pinned_mac, "a pinned neighbour changed", k);
    }
    check_untouched(r.c);
    return 0;
}
