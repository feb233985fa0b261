// accept_guard: which accept errors mean "out of descriptors", and the spare.
#include "proxy/accept_guard.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

using egressd::proxy::out_of_descriptors;
using egressd::proxy::spare_descriptor;

namespace {

boost::system::error_code sys(int e) { return {e, boost::system::system_category()}; }

TEST(AcceptGuard, ExhaustionErrors) {
  EXPECT_TRUE(out_of_descriptors(sys(EMFILE)));
  EXPECT_TRUE(out_of_descriptors(sys(ENFILE)));
  EXPECT_TRUE(out_of_descriptors(sys(ENOBUFS)));
  EXPECT_TRUE(out_of_descriptors(sys(ENOMEM)));
  EXPECT_FALSE(out_of_descriptors(sys(ECONNABORTED)));
  EXPECT_FALSE(out_of_descriptors(sys(EAGAIN)));
  EXPECT_FALSE(out_of_descriptors({}));
}

TEST(AcceptGuard, SpareReleaseRestore) {
  spare_descriptor s;
  EXPECT_TRUE(s.release());
  EXPECT_FALSE(s.release());  // none held
  EXPECT_TRUE(s.restore());
  EXPECT_TRUE(s.release());
}

TEST(AcceptGuard, AdoptKeepsTheSlot) {
  spare_descriptor s;
  ASSERT_TRUE(s.release());
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  s.adopt(sv[0]);  // the connection is closed, the number stays open (as /dev/null)
  EXPECT_GE(::fcntl(sv[0], F_GETFD), 0);
  char c;
  EXPECT_EQ(::read(sv[1], &c, 1), 0);  // the peer sees EOF
  EXPECT_TRUE(s.release());            // the spare is sv[0]
  EXPECT_LT(::fcntl(sv[0], F_GETFD), 0);
  ::close(sv[1]);
}

}  // namespace
