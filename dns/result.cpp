#include "dns/result.hpp"

namespace egressd::dns {

const char* to_string(status s) {
  switch (s) {
    case status::ok: return "ok";
    case status::nxdomain: return "nxdomain";
    case status::timeout: return "timeout";
    case status::failure: return "failure";
  }
  return "failure";
}

}  // namespace egressd::dns
