// One log line per event worth an operator's attention that the control
// plane learns by looking (docs/operations.md, "Logs"): the overload
// controller shedding listeners and re-admitting, a port's link going down
// or up, a neighbour's MAC changing, admission refusals summarised once per
// second. (Recording failures, pauses and resumes are logged by the
// recorder itself, stalls by the overload controller.) stentord calls poll()
// from its main loop; every check reads what the faces (API, metrics)
// read too, so nothing here touches the data plane's path.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace stentor::control {

class control_plane;

class ops_watch {
public:
    using clock = std::chrono::steady_clock;
    explicit ops_watch(control_plane& cp);
    // Logs what changed since the last call. Cheap: stentord calls it every
    // 100 ms; ports, neighbours and recordings are looked at once a second.
    void poll(clock::time_point now);

private:
    void overload();
    void refusals();
    void links();
    void neighbours();

    control_plane& _cp;
    clock::time_point _last_slow{};
    bool _first = true;
    uint64_t _last_event = 0;
    std::string _ovl_state = "normal";
    std::map<std::string, uint64_t> _refusals;
    std::map<std::string, bool> _link_up;
    struct neigh_seen {
        uint32_t ip_be;
        uint64_t mac;
    };
    std::vector<neigh_seen> _neigh;
};

}  // namespace stentor::control
