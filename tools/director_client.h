// The listener's side of stentor-director (docs/fleet.md): POST /v1/place
// for one listener, over libcurl, to each director in turn until one
// answers 200. Blocking, bounded by a timeout per director; used only when
// the listener is placed or moves, never per packet.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stentor::tools {

struct director_placement {
    std::string edge;
    std::string address;
    uint16_t port = 0;
    std::string token;
    std::string password;
};

struct director_answer {
    bool ok = false;
    director_placement placement;
    std::string director;   // the URL that answered (or was tried last)
    long http = 0;          // its HTTP status (0: no answer)
    std::string error;      // "<error code>: <reason>" or the transport's failure
    double ms = 0;          // time spent over every director tried
};

struct place_query {
    uint32_t session = 0;
    uint8_t tier = 1;
    std::string region;
    std::vector<std::string> exclude;   // edges not wanted (the one just lost)
    bool ipv6 = false;                  // ask for an edge's IPv6 address ("family": "ipv6")
};

class director_client {
public:
    // urls: "http://host:port" base URLs; bearer: the [director] token.
    director_client(std::vector<std::string> urls, std::string bearer, long timeout_ms);
    ~director_client();
    director_client(const director_client&) = delete;
    director_client& operator=(const director_client&) = delete;

    director_answer place(const place_query& q);

private:
    struct impl;
    std::unique_ptr<impl> _i;
};

}  // namespace stentor::tools
