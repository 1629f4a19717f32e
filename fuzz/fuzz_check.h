// FUZZ_CHECK: an invariant a fuzz target asserts about a parser's result.
//
// A broken invariant prints what broke and aborts, which libFuzzer reports as a
// crash together with the input, and which fails the corpus replay test. It is
// active in every build type (assert() would vanish under NDEBUG).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace lotus::fuzz {

[[noreturn]] inline void check_failed(const char* file, int line, const char* condition,
                                      std::string_view detail) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %.*s\n", file, line, condition,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

}  // namespace lotus::fuzz

// `detail` is evaluated only when the check fails; anything convertible to
// std::string_view will do (lotus::cat(...) builds one).
#define FUZZ_CHECK(condition, detail)                                                   \
  do {                                                                                  \
    if (!(condition)) {                                                                 \
      ::lotus::fuzz::check_failed(__FILE__, __LINE__, #condition, std::string(detail)); \
    }                                                                                   \
  } while (false)
