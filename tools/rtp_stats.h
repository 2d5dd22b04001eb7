// Per-stream receive statistics for the listener probe: loss, duplicates and
// reordering from RTP sequence numbers, and RFC 3550 interarrival jitter.
// Kept free of I/O so the arithmetic (wrap handling above all) is easy to check.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace stentor::tools {

enum class arrival_kind { first, in_order, late, duplicate };

class rtp_stream_stats {
public:
    // Packets more than this many sequence numbers behind the highest one seen
    // cannot be told apart from duplicates any more; they count as late.
    static constexpr uint64_t dup_window = 4096;

    // seq/timestamp from the RTP header; arrival_ns on any clock that does not
    // jump (only differences are used); clock_hz is the RTP clock rate.
    arrival_kind on_packet(uint16_t seq, uint32_t timestamp, int64_t arrival_ns, uint32_t clock_hz) {
        ++received_;
        if (received_ == 1) {
            last_ext_ = (1ull << 32) + seq;
            // Start the extended sequence space well above 0 so that early
            // late packets (seq just below the first one) stay positive.
            base_ext_ = max_ext_ = (1ull << 32) + seq;
            mark(max_ext_);
            update_jitter(timestamp, arrival_ns, clock_hz);
            return arrival_kind::first;
        }
        // Unwrap: the extended number nearest to the highest one seen
        // (RFC 3550 A.1 does the same with explicit cycle counting).
        const auto delta = static_cast<int16_t>(static_cast<uint16_t>(seq - static_cast<uint16_t>(max_ext_)));
        const uint64_t ext = max_ext_ + static_cast<uint64_t>(static_cast<int64_t>(delta));
        last_ext_ = ext;
        if (ext > max_ext_) {
            // Clear the window slots the highest number moves past, then mark.
            const uint64_t step = ext - max_ext_;
            if (step >= dup_window) {
                seen_.fill(0);
            } else {
                for (uint64_t s = max_ext_ + 1; s < ext; ++s) clear(s);
            }
            max_ext_ = ext;
            mark(ext);
            update_jitter(timestamp, arrival_ns, clock_hz);
            return arrival_kind::in_order;
        }
        if (ext < base_ext_) base_ext_ = ext;  // late packet from before the first one received
        if (max_ext_ - ext < dup_window && is_marked(ext)) {
            ++duplicates_;
            return arrival_kind::duplicate;
        }
        if (max_ext_ - ext < dup_window) mark(ext);
        ++late_;
        update_jitter(timestamp, arrival_ns, clock_hz);
        return arrival_kind::late;
    }

    uint64_t received() const { return received_; }  // every packet, duplicates included
    uint64_t duplicates() const { return duplicates_; }
    uint64_t reordered() const { return late_; }
    // Sequence numbers from the lowest to the highest seen; packets lost
    // after the last one received cannot be known and are not counted.
    uint64_t expected() const { return received_ ? max_ext_ - base_ext_ + 1 : 0; }
    int64_t lost() const { return static_cast<int64_t>(expected()) - static_cast<int64_t>(received_ - duplicates_); }
    // RFC 3550 6.4.1 interarrival jitter, in clock units and in ms.
    double jitter_units() const { return jitter_; }
    double jitter_ms(uint32_t clock_hz) const { return jitter_ * 1000.0 / clock_hz; }
    uint64_t highest_ext_seq() const { return max_ext_; }
    // Extended sequence number of the packet last passed to on_packet.
    uint64_t last_ext_seq() const { return last_ext_; }

private:
    void update_jitter(uint32_t ts, int64_t arrival_ns, uint32_t clock_hz) {
        // D(i,j) = (Rj - Ri) - (Sj - Si) between consecutive packets in arrival
        // order; the RTP difference is taken modulo 2^32 so wraps cost nothing.
        if (have_prev_) {
            const double r = static_cast<double>(arrival_ns - prev_arrival_ns_) * clock_hz / 1e9;
            const double s = static_cast<double>(static_cast<int32_t>(ts - prev_ts_));
            jitter_ += (std::fabs(r - s) - jitter_) / 16.0;
        }
        have_prev_ = true;
        prev_ts_ = ts;
        prev_arrival_ns_ = arrival_ns;
    }
    void mark(uint64_t ext) { seen_[(ext / 64) % seen_.size()] |= bit(ext); }
    void clear(uint64_t ext) { seen_[(ext / 64) % seen_.size()] &= ~bit(ext); }
    bool is_marked(uint64_t ext) const { return (seen_[(ext / 64) % seen_.size()] & bit(ext)) != 0; }
    static uint64_t bit(uint64_t ext) { return 1ull << (ext % 64); }

    uint64_t received_ = 0, duplicates_ = 0, late_ = 0;
    uint64_t base_ext_ = 0, max_ext_ = 0, last_ext_ = 0;
    std::array<uint64_t, dup_window / 64> seen_{};
    bool have_prev_ = false;
    uint32_t prev_ts_ = 0;
    int64_t prev_arrival_ns_ = 0;
    double jitter_ = 0;
};

}  // namespace stentor::tools
