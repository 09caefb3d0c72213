// collect_batch: how both projectors fill a batch from their consumer, by count, size and time.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>

#include "common/kafka.hpp"

namespace syncline {

// Hands records to `accept` (which may drop them), first those in `carry` (polled while a
// failure was being retried), then from `consumer`. Stops when `full()`, when `linger` has passed
// since the batch got its first record (`size()` went from 0 to more), after 100 ms with nothing
// at all (so the caller's loop keeps running), or on a shutdown request. Consumer error events
// other than end-of-partition are logged.
void collect_batch(kafka::Consumer& consumer, std::deque<kafka::Message>& carry, std::chrono::milliseconds linger,
                   const std::function<std::size_t()>& size, const std::function<bool()>& full,
                   const std::function<void(kafka::Message)>& accept);

}  // namespace syncline
