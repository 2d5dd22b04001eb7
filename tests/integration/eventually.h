// Waiting on another thread in tests, without timing assertions: a bounded
// wait for a condition, and a function run on a thread of its own.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>

namespace stentor::test {

// Bounded wait for a condition another thread makes true; false on timeout.
inline bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// `fn` on a thread of its own; done() once it returned. The destructor
// joins: whoever holds a slow disk (slow_fs.h) must have released it by then.
struct background {
    std::atomic<bool> finished{false};
    std::thread t;
    explicit background(std::function<void()> fn) : t([this, fn = std::move(fn)] { fn(); finished = true; }) {}
    ~background() { t.join(); }
    background(const background&) = delete;
    background& operator=(const background&) = delete;
    bool done() const { return finished.load(); }
};

}  // namespace stentor::test
