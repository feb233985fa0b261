#include "proxy/listen_socket.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace egressd::proxy {

std::unique_ptr<tcp::acceptor> open_acceptor(net::io_context& io, const tcp::endpoint& ep, bool reuseport,
                                             int backlog, error_code& ec) {
  auto a = std::make_unique<tcp::acceptor>(io);
  a->open(ep.protocol(), ec);
  if (!ec) a->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && reuseport) {
    int one = 1;
    if (::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec.assign(errno, boost::system::system_category());
  }
  if (!ec) a->bind(ep, ec);
  if (!ec) a->listen(backlog, ec);
  if (ec) return nullptr;
  return a;
}

}  // namespace egressd::proxy
