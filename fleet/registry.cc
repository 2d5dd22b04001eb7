#include "registry.h"

#include <nlohmann/json.hpp>

#include "log_escape.h"

namespace stentor::fleet {

using json = nlohmann::json;

namespace {

// nlohmann's get<uint16_t>() of 70000 is 4464 and get<uint32_t>() of -1 is
// 4294967295, without a word: check the kind and the range first.
bool fits(const json& v, uint64_t max) { return v.is_number_unsigned() && v.get<uint64_t>() <= max; }

}  // namespace

std::optional<uint32_t> parse_session_key(std::string_view text) {
    if (text.empty() || text.size() > 10 || text.front() == '0') return std::nullopt;
    uint64_t v = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v > 0xffffffffu) return std::nullopt;
    return static_cast<uint32_t>(v);
}

std::string relay_record::to_json() const {
    json s = json::array();
    for (const auto& [id, port] : sessions) {
        json e = json::array({id, port});
        if (auto it = ssrcs.find(id); it != ssrcs.end() && !it->second.empty()) e.push_back(it->second);
        s.push_back(std::move(e));
    }
    json j{{"id", id},
           {"role", role},
           {"region", region},
           {"addresses", addresses},
           {"addresses6", addresses6},
           {"trunk_family", trunk_family},
           {"slots", slots},
           {"line_rate_mbps", line_rate_mbps},
           {"listeners", listeners},
           {"draining", draining},
           {"sessions", s},
           {"trunk_auth", trunk_auth},
           {"seq", seq}};
    if (!trunk_epoch.empty()) j["trunk_epoch"] = trunk_epoch;
    return j.dump();
}

std::optional<relay_record> relay_record::from_json(const std::string& text, std::string* why) {
    const json j = json::parse(text, nullptr, false);
    auto bad = [why](const std::string& w) -> std::optional<relay_record> {
        if (why != nullptr) *why = w;
        return std::nullopt;
    };
    if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
    try {
        relay_record r;
        r.id = j.at("id").get<std::string>();
        r.role = j.at("role").get<std::string>();
        if (r.role != "origin" && r.role != "edge")
            return bad("role \"" + escape_for_log(r.role) + "\" is neither origin nor edge");
        r.region = j.value("region", "");
        r.addresses = j.at("addresses").get<std::vector<std::string>>();
        if (j.contains("addresses6")) r.addresses6 = j["addresses6"].get<std::vector<std::string>>();
        r.trunk_family = j.value("trunk_family", "ipv4");
        if (r.trunk_family != "ipv4" && r.trunk_family != "ipv6" && r.trunk_family != "auto")
            return bad("trunk_family \"" + escape_for_log(r.trunk_family) + "\" is none of ipv4, ipv6, auto");
        // nlohmann converts -1 to a huge unsigned without a word: check the kind.
        for (const char* k : {"slots", "listeners"})
            if (!j.at(k).is_number_unsigned()) return bad(std::string(k) + " is not a non-negative integer");
        if (j.contains("line_rate_mbps") && !j["line_rate_mbps"].is_number_unsigned())
            return bad("line_rate_mbps is not a non-negative integer");
        r.slots = j.at("slots").get<uint64_t>();
        r.line_rate_mbps = j.value("line_rate_mbps", uint64_t{0});
        r.listeners = j.at("listeners").get<uint64_t>();
        r.draining = j.value("draining", false);
        for (const auto& s : j.value("sessions", json::array())) {
            if (!s.is_array() || s.size() < 2 || s.size() > 3) return bad("a sessions entry is not [id, port] or [id, port, [ssrc, ...]]");
            if (!fits(s[0], 0xffffffffu)) return bad("a session id is not a 32-bit unsigned integer");
            const uint32_t id = s[0].get<uint32_t>();
            if (!fits(s[1], 65535)) return bad("session " + std::to_string(id) + ": the port is not 0..65535");
            r.sessions.emplace_back(id, s[1].get<uint16_t>());
            if (s.size() == 3) {
                if (!s[2].is_array()) return bad("session " + std::to_string(id) + ": ssrcs is not an array");
                for (const auto& x : s[2])
                    if (!x.is_number_unsigned() || x.get<uint64_t>() > 0xffffffffu)
                        return bad("session " + std::to_string(id) + ": an SSRC is not a 32-bit unsigned integer");
                r.ssrcs[id] = s[2].get<std::vector<uint32_t>>();
            }
        }
        if (j.contains("trunk_auth")) {
            if (!j["trunk_auth"].is_boolean()) return bad("trunk_auth is not true or false");
            r.trunk_auth = j["trunk_auth"].get<bool>();
        }
        if (j.contains("trunk_epoch")) {
            if (!j["trunk_epoch"].is_string()) return bad("trunk_epoch is not a string");
            r.trunk_epoch = j["trunk_epoch"].get<std::string>();
        }
        r.seq = j.value("seq", uint64_t{0});
        if (r.id.empty()) return bad("empty id");
        return r;
    } catch (const json::exception& e) {
        return bad(e.what());
    }
}

std::string trunk_record::to_json() const {
    return json{{"session", session},
                {"edge", edge},
                {"origins", origins},
                {"origin", origins.empty() ? std::string() : origins.front()},
                {"udp_port", udp_port},
                {"created_by", created_by}}
        .dump();
}

std::optional<trunk_record> trunk_record::from_json(const std::string& text, std::string* why) {
    const json j = json::parse(text, nullptr, false);
    try {
        if (j.is_discarded() || !j.is_object()) throw json::other_error::create(501, "not a JSON object", nullptr);
        trunk_record t;
        if (!fits(j.at("session"), 0xffffffffu))
            throw json::other_error::create(501, "session is not a 32-bit unsigned integer", nullptr);
        t.session = j.at("session").get<uint32_t>();
        t.edge = j.at("edge").get<std::string>();
        if (j.contains("origins")) t.origins = j.at("origins").get<std::vector<std::string>>();
        else t.origins.push_back(j.at("origin").get<std::string>());
        std::erase(t.origins, std::string());
        if (t.origins.empty()) throw json::other_error::create(501, "no origin", nullptr);
        if (t.edge.empty()) throw json::other_error::create(501, "empty edge", nullptr);
        if (!fits(j.at("udp_port"), 65535)) throw json::other_error::create(501, "udp_port is not 0..65535", nullptr);
        t.udp_port = j.at("udp_port").get<uint16_t>();
        t.created_by = j.value("created_by", "");
        return t;
    } catch (const json::exception& e) {
        if (why != nullptr) *why = e.what();
        return std::nullopt;
    }
}

}  // namespace stentor::fleet
