// Failpoints: named places where a test can make the process die at an exact moment (kill -9 of
// itself), for the fault checker's narrow windows. Off unless SYNCLINE_FAILPOINTS is set.
#pragma once

#include <string_view>

namespace syncline::failpoint {

// SYNCLINE_FAILPOINTS="name[@N][,name[@N]...]": the Nth time (default the first) the process passes
// `name`, it sends itself SIGKILL, as an operator's or the kernel's kill -9 would. Read once, at the
// first hit() of the process; unknown names are simply never reached. Every name in use is listed in
// docs/CHAOS.md. Thread-safe; one branch when the variable is not set.
void hit(std::string_view name);

}  // namespace syncline::failpoint
