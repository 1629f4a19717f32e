// The request/reply bookkeeping both buses share: a reply resumes its
// request, a timeout or an unrouted request fails it, a gone node fails only
// the requests routed to it, and stopping fails the rest.
#include "bus/pending_requests.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/thread_pool.hpp>

#include "lotus/strings.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class PendingRequestsTest : public ::testing::Test {
 protected:
  // Starts a request whose send() answers it at once when `answer` is set.
  PendingRequests::Request make(std::string channel, std::vector<std::string> nodes,
                                size_t receivers, std::chrono::milliseconds timeout = 5s) {
    PendingRequests::Request request;
    request.correlation = pending_.next_correlation();
    request.channel = std::move(channel);
    request.timeout = timeout;
    request.nodes = std::move(nodes);
    request.nobody = "nobody handles";
    request.send = [receivers]() -> Result<size_t> { return receivers; };
    return request;
  }
  Event reply_to(const std::string& correlation) {
    Event reply = Event::make("reply.x", "responder", Json{{"n", 1}});
    reply.metadata.correlation_id = correlation;
    return reply;
  }

  boost::asio::thread_pool pool_{2};
  PendingRequests pending_{pool_.get_executor()};
};

TEST_F(PendingRequestsTest, AReplyResumesItsRequestAndALateOneIsIgnored) {
  auto request = make("tool.a.b", {}, 1);
  const std::string correlation = request.correlation;
  request.send = [this, correlation]() -> Result<size_t> {
    EXPECT_EQ(pending_.size(), 1u);  // waiting before it goes out
    EXPECT_TRUE(pending_.answer(std::make_shared<const Event>(reply_to(correlation))));
    return 1;
  };
  auto result = testing::sync_wait(pool_.get_executor(), pending_.wait(std::move(request)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ((*result)->data["n"], 1);
  EXPECT_EQ(pending_.size(), 0u);
  EXPECT_FALSE(pending_.answer(std::make_shared<const Event>(reply_to(correlation))));
}

TEST_F(PendingRequestsTest, NoReceiverOrNoReplyFailsClearly) {
  auto unrouted = testing::sync_wait(pool_.get_executor(), pending_.wait(make("x.y", {}, 0)));
  EXPECT_EQ(unrouted.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(message_of(unrouted.status()), "nobody handles \"x.y\"");
  auto late = testing::sync_wait(pool_.get_executor(), pending_.wait(make("x.y", {}, 1, 50ms)));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(message_of(late.status())),
              HasSubstr("no reply to \"x.y\" within 50 ms"));
  EXPECT_EQ(pending_.size(), 0u);
}

TEST_F(PendingRequestsTest, AGoneNodeFailsOnlyTheRequestsRoutedToIt) {
  std::thread gone([this] {
    while (pending_.size() < 1) std::this_thread::sleep_for(1ms);
    pending_.fail_routed_to("c", [](const std::string& channel) {
      return absl::UnavailableError(cat("c left while ", channel, " waited"));
    });
    pending_.fail_routed_to("b", [](const std::string& channel) {
      return absl::UnavailableError(cat("b left while ", channel, " waited"));
    });
  });
  auto b = testing::sync_wait(pool_.get_executor(), pending_.wait(make("tool.b", {"a", "b"}, 1)));
  gone.join();
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(message_of(b.status()), "b left while tool.b waited");
}

TEST_F(PendingRequestsTest, StoppingFailsEveryWaitingRequest) {
  auto waiting = pending_.wait(make("tool.a", {}, 1));
  std::thread stop([this] {
    while (pending_.size() < 1) std::this_thread::sleep_for(1ms);
    pending_.cancel_all(absl::CancelledError("stopping"));
  });
  auto result = testing::sync_wait(pool_.get_executor(), std::move(waiting));
  stop.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
}

TEST(MakeReplyTest, CarriesTheIdsAndRefusesARequestWithoutReplyTo) {
  Event request = Event::make("tool.a", "caller", Json::object());
  EXPECT_EQ(make_reply(request, "a", Json::object()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  request.metadata.reply_to = "reply.r";
  request.metadata.correlation_id = "7-x";
  request.metadata.trace_id = "t";
  request.metadata.user_id = "u";
  auto reply = make_reply(request, "a", Json{{"ok", true}});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->channel, "reply.r");
  EXPECT_EQ(reply->source, "a");
  EXPECT_EQ(reply->metadata.correlation_id, "7-x");
  EXPECT_EQ(reply->metadata.trace_id, "t");
  EXPECT_EQ(reply->metadata.user_id, "u");
}

}  // namespace
}  // namespace lotus
