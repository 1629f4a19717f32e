// sleep_on: suspends a lotus::Task for a while on an Asio executor without
// holding a thread (ModuleContext::sleep and the tool broker's retries).
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lotus/task.h"

namespace lotus {

inline Task<void> sleep_on(boost::asio::any_io_executor executor,
                           std::chrono::milliseconds duration) {
  auto timer = std::make_shared<boost::asio::steady_timer>(executor, duration);
  auto awaiter = resume_with<bool>([timer](auto resume) {
    timer->async_wait([timer, resume](boost::system::error_code) { resume(true); });
  });
  co_await awaiter;
}

}  // namespace lotus
