#pragma once
// What a request or tunnel was, and what egressd decided: one enum each,
// shared by the access-log record and the metrics labels, with one spelling
// each (the SPEC's log values and label values are the same words).

#include <cstdint>

namespace egressd::monitor {

enum class request_kind : uint8_t { http, connect, sni, host, forward };
enum class request_decision : uint8_t { allow, deny, report };

// Defined in metrics.cpp.
const char* to_string(request_kind k);
const char* to_string(request_decision d);

}  // namespace egressd::monitor
