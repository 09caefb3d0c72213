// collect_batch (see consumer_batch.hpp).
#include "common/consumer_batch.hpp"

#include <algorithm>
#include <optional>

#include "common/logging.hpp"
#include "common/shutdown.hpp"

namespace syncline {

void collect_batch(kafka::Consumer& consumer, std::deque<kafka::Message>& carry, std::chrono::milliseconds linger,
                   const std::function<std::size_t()>& size, const std::function<bool()>& full,
                   const std::function<void(kafka::Message)>& accept) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  while (!carry.empty() && !full()) {
    accept(std::move(carry.front()));
    carry.pop_front();
  }
  std::optional<Clock::time_point> deadline;
  if (size() > 0) deadline = Clock::now() + linger;
  while (!full() && !shutdown::requested()) {
    const auto timeout =
        deadline ? std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(*deadline - Clock::now()))
                 : milliseconds(100);
    auto message = consumer.poll(timeout);
    if (message && message->ok()) {
      const bool was_empty = size() == 0;
      accept(std::move(*message));
      if (was_empty && size() > 0) deadline = Clock::now() + linger;
    } else if (message && message->error() != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      log::get("kafka")->warn("consumer: {}", message->error_message());
    }
    if (!deadline ? !message : Clock::now() >= *deadline) break;
  }
}

}  // namespace syncline
