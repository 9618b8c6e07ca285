#pragma once
// Periodic: the master loop's timed work, each job with its name and its own
// period (Redis's run_with_period), run from one 100 ms tick instead of
// counting ticks by hand. On the master loop.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace tcpfork {

class Periodic {
 public:
  using Clock = std::chrono::steady_clock;

  // `job` runs at the first tick and then once `period` has passed since it last ran.
  void add(std::string name, std::chrono::milliseconds period, std::function<void()> job) {
    jobs_.push_back(Job{std::move(name), period, std::move(job), {}});
  }

  void runDue(Clock::time_point now) {
    for (Job& job : jobs_) {
      if (now < job.due) continue;
      job.due = now + job.period;
      job.run();
    }
  }

 private:
  struct Job {
    std::string name;  // says what the job is where it is registered
    std::chrono::milliseconds period;
    std::function<void()> run;
    Clock::time_point due;
  };
  std::vector<Job> jobs_;
};

}  // namespace tcpfork
