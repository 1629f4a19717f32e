#include "bus/continuation.h"

namespace lotus {
namespace {

thread_local int scopes = 0;
thread_local bool handler_allows = false;
thread_local std::atomic<int> waiting{0};

}  // namespace

ContinuationScope::ContinuationScope() { ++scopes; }
ContinuationScope::~ContinuationScope() { --scopes; }

void allow_continuations_in_handler(bool allowed) { handler_allows = allowed; }

bool in_continuation_scope() { return scopes > 0 || handler_allows; }

bool continuations_waiting() { return waiting.load(std::memory_order_relaxed) > 0; }

namespace detail {
std::atomic<int>* count_continuation() {
  waiting.fetch_add(1, std::memory_order_relaxed);
  return &waiting;
}
}  // namespace detail

}  // namespace lotus
