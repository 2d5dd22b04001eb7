// The relay as a member of a fleet ([fleet], docs/fleet.md): what it
// advertises in the registry, from its admission and its state, and the
// registrar that keeps it there. Runs on the registrar's own thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config.h"
#include "registrar.h"
#include "registry.h"

namespace stentor::control {

class relay;
class relay_state;
class control_plane;

// The record the relay registers now: role, region, advertised addresses,
// listener slots (admission's capacity after headroom, in nominal Opus
// listeners), line rate, listeners and the sessions it carries; whether its
// trunks are authenticated and, if so, this run's epoch (`trunk_epoch`,
// docs/fleet.md "Trunk authentication").
fleet::relay_record fleet_record(const profile& p, relay& r, control_plane& cp, uint64_t trunk_epoch);

// The sessions the relay carries, with their speakers' SSRCs (a trunk's
// edge registers its flows with them), as the record lists them.
void fleet_sessions_of(const relay_state& st, fleet::relay_record& rec);

// A started registrar for this relay; nullptr without [fleet].
std::unique_ptr<fleet::registrar> fleet_join(const profile& p, relay& r, control_plane& cp, uint64_t trunk_epoch);

// What the log says about the registration: a line when it changes
// (registered, etcd lost with the reason, registered again under a new
// lease, the relay id held by another relay's lease), nothing otherwise. Called from stentord's loop.
class fleet_log {
public:
    std::optional<std::string> poll(const fleet::registrar& reg);

private:
    bool _registered = false;
    bool _clash = false;
    bool _failing = false;   // the last line said etcd is unreachable or refusing
    int64_t _lease = 0;
    bool _first = true;
};

}  // namespace stentor::control
