// The write-ahead journal of relay_state's accepted actions, and the restore
// at start (docs/architecture.md, "Journal").
//
// Files in the journal directory (N = epoch, decimal):
//   journal.N    header + the records of every action since snapshot.N
//   snapshot.N   header + the whole state as records, ending in snapshot_end
// snapshot.N is the state journal.N starts from; journal.1 starts from
// nothing. A restore applies the newest good snapshot, then its journal and
// any later ones in order.
//
// Group commit: actions encode their record into a buffer under the state
// mutex (no syscall); the publisher (relay_state::publish) hands the buffer
// to append(), which writes it and syncs once for everything that arrived
// meanwhile, before the change counts as published. Acknowledged = durable
// and forwarding.
//
// Compaction: once the current journal is larger than max(compact_bytes,
// 4 x the last snapshot), the publisher copies the state (under the mutex,
// unsorted), starts journal.N+1 at once, and a background thread writes
// snapshot.N+1 (tmp, fsync, rename, fsync dir) and only then removes the
// files of older epochs. A crash at any point leaves a chain that restores.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "journal_format.h"
#include "session.h"

namespace stentor::control {

class relay_state;

struct journal_options {
    std::string dir;                       // created if missing
    bool fsync = true;                     // fdatasync every group commit (false: page cache only)
    uint64_t compact_bytes = 64ull << 20;  // compact when journal.N grows past this (and 4 x the snapshot)
};

// The whole model as a snapshot holds it: copied under the state mutex
// (no sorting, no encoding there), written off it.
struct state_image {
    struct session {
        session_params p;                  // as created: id, name, udp_port, max_listeners resolved
        std::vector<speaker_spec> speakers;
    };
    struct listener {
        uint64_t seq;                      // join order across sessions (shedding takes the newest)
        uint32_t session_id;
        uint32_t ip;
        uint16_t port;
        uint8_t tier;
        bool by_token;                     // joined by token (journaled in the tier byte's bit 7)
        std::optional<ipv6_addr> ip6 = std::nullopt;      // an IPv6 listener (ip 0)
    };
    // SRTP egress reservations (rec_srtp_reserve) of live and ended sessions.
    struct egress_mark {
        uint32_t session_id;
        uint32_t ssrc_be;
        uint64_t limit;
    };
    std::vector<session> sessions;
    uint64_t next_session_id = 1;          // automatic ids start here (rec_session_ids)
    std::vector<listener> listeners;       // any order: the writer sorts by seq
    std::vector<egress_mark> egress_marks;
    // SRTP ingress marks (rec_srtp_ingress_mark) of live sessions' speakers.
    struct ingress_mark {
        uint32_t session_id;
        uint32_t ip;
        ipv6_addr ip6;                     // all zero: an IPv4 speaker
        unsigned port;
        uint32_t ssrc_be;
        uint64_t index;
    };
    std::vector<ingress_mark> ingress_marks;
};

struct restore_report {
    bool empty = true;                     // nothing on disk: the profile's static section seeds the state
    uint64_t epoch = 0;                    // of the journal appended to from now on
    uint64_t records_applied = 0;
    uint64_t records_skipped = 0;          // refused by the actions (logged with the reason)
    uint64_t bytes_dropped = 0;            // torn or corrupt tails cut off
    size_t sessions = 0;
    size_t speakers = 0;
    uint64_t listeners = 0;
    double seconds = 0;
    std::vector<std::string> lines;        // what happened, one log line each
};

struct journal_stats {
    uint64_t epoch = 0;
    uint64_t bytes = 0;                    // current journal file
    uint64_t writes = 0;                   // group commits written (one sync each when fsync is on)
    uint64_t bytes_written = 0;
    uint64_t write_errors = 0;
    uint64_t compactions = 0;              // snapshots written
    uint64_t snapshot_bytes = 0;           // the last one
    double last_snapshot_s = 0;            // sort + encode + write + sync of the last one
};

class journal {
public:
    // Opens (creates) the directory and locks it (flock on <dir>/lock, held
    // until the journal is destroyed: the kernel drops it when the process
    // dies); throws std::runtime_error naming it and the reason if it cannot,
    // or if another journal (another stentord) holds the lock. Reads nothing
    // until restore().
    explicit journal(journal_options o);
    ~journal();
    journal(const journal&) = delete;
    journal& operator=(const journal&) = delete;

    // Remove every journal and snapshot file of `dir` (stentord --fresh).
    // Returns how many; `bytes` gets their total size. Throws
    // std::runtime_error, removing nothing, while a journal (another
    // stentord) holds the directory's lock.
    static size_t discard(const std::string& dir, uint64_t* bytes = nullptr);

    // Apply the newest good snapshot and the journals after it to `st`
    // through its actions (journaling not attached yet), cut torn or corrupt
    // tails, and open the last journal for appending. A record the actions
    // refuse is logged and skipped; then a fresh snapshot of what was
    // restored replaces the old files, so that they never disagree with the
    // state again. Never throws for bad content; throws std::runtime_error
    // when the directory cannot be read or written.
    restore_report restore(relay_state& st);

    // --- the publisher (relay_state::publish), one call at a time ---------
    // Write at the end of the current journal and sync. false: nothing of
    // `bytes` counts as written (a partial write is cut off again); error()
    // says why. After a failure, retries come at most every 100 ms.
    bool append(std::string_view bytes);
    bool compaction_due() const;
    // Start the next epoch now; the snapshot of `img` is written in the
    // background. The caller appended every record `img` reflects first.
    void compact(state_image img);
    std::string error() const;
    journal_stats stats() const;
    const journal_options& options() const { return _o; }
    // Tests and shutdown: wait until no snapshot is being written.
    void wait_compaction();

private:
    void open_for_append(uint64_t epoch, uint64_t size);
    void create_journal(uint64_t epoch);
    // Write snapshot.<epoch> (sorted, encoded, synced, renamed) and remove
    // older epochs. Returns the bytes written; throws std::runtime_error.
    uint64_t write_snapshot(state_image& img, uint64_t epoch);
    void background();

    journal_options _o;
    int _dir_fd = -1;
    int _lock_fd = -1;                     // <dir>/lock, flock'ed: one journal per directory
    int _fd = -1;                          // current journal.<_epoch>
    uint64_t _epoch = 0;
    uint64_t _size = 0;                    // good bytes of the current journal
    bool _force_compact = false;

    mutable std::mutex _mu;                // guards what other threads read: stats, error, the job
    std::condition_variable _cv;
    journal_stats _stats;
    std::string _error;
    std::chrono::steady_clock::time_point _failed_at{};
    std::chrono::steady_clock::time_point _compact_not_before{};
    std::optional<std::pair<state_image, uint64_t>> _job;   // snapshot to write, its epoch
    bool _compacting = false;
    bool _stop = false;
    std::thread _thr;
};

}  // namespace stentor::control
