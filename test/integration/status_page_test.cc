// The live status page at / on the admin port: served whole and on its own
// (no external URL), fed by /status, and, in Debian's chromium against a
// master under load, filled with a row per worker, drawn charts, a stalled
// worker shown as such, through a reload and across a master that stops
// answering; an overloaded worker marked, with its shed/s. The browser test leaves
// screenshots in the build tree: screenshots/status-page.png and
// screenshots/status-page-master-down.png.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "test/integration/headless_browser.h"
#include "test/integration/http_get.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"
#include "test/integration/worker_slot.h"

namespace tcpfork::test {
namespace {

// What the test reads of the page, as one JSON value.
constexpr const char* kPageState = R"((() => {
  if (!document.getElementById("totals")) {  // still loading
    return {polls: 0, rows: [], totalRps: "", totalShed: "", rpsPoints: 0, p99Points: 0, bannerShown: false,
            banner: ""};
  }
  const text = (row, cls) => row.querySelector("." + cls).textContent;
  const rows = [...document.querySelectorAll("#workers tr.worker")].map(row => ({
    pid: Number(row.dataset.pid), generation: Number(row.dataset.generation),
    state: text(row, "state"), rps: text(row, "rps"), shed: text(row, "shed"), p99: text(row, "p99"),
    queueDelay: text(row, "qdelay"), lag: text(row, "lag"), queue: text(row, "queue"),
    overloadMark: row.querySelector(".state .s-overloaded") ? getComputedStyle(row.querySelector(".state .s-overloaded")).backgroundColor : ""}));
  const segments = id => (document.querySelector(id + " path.line").getAttribute("d") || "").split(/[ML]/).length - 1;
  return {polls: Number(document.body.dataset.polls || 0), rows,
          totalRps: document.querySelector("#totals").children[6].textContent,
          totalShed: document.querySelector("#totals").children[7].textContent,
          rpsPoints: segments("#chart-rps"), p99Points: segments("#chart-p99"),
          bannerShown: !document.getElementById("banner").hidden,
          banner: document.getElementById("banner").textContent};
})())";

// A rate the page shows as moving in the last second ("…": no second
// sample yet; "–": none).
bool moving(const std::string& rate) { return rate != "…" && rate != "–" && rate != "0"; }

// A req/s figure the page shows for a worker that served in the last second.
bool busy(const nlohmann::json& row) { return moving(row.at("rps")); }

std::string screenshotPath(const std::string& name) {
  return std::string(TCPFORK_BUILD_DIR) + "/screenshots/" + name;
}

TEST(StatusPage, IsOneSelfContainedDocument) {
  RunningMaster master(1);
  HttpResponse page = httpGet(master.metricsPort(), "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.headers.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << page.headers;
  EXPECT_NE(page.headers.find("Content-Security-Policy: default-src 'none'"), std::string::npos) << page.headers;
  EXPECT_NE(page.body.find("<script>"), std::string::npos);
  EXPECT_NE(page.body.find("fetch(\"status\""), std::string::npos);
  // No address of anywhere else: no scheme, no protocol-relative URL, no src= or <link>.
  std::smatch m;
  EXPECT_FALSE(std::regex_search(page.body, m, std::regex(R"(https?:|//[a-z0-9.-]+\.[a-z]{2,}|\bsrc=|<link)")))
      << "external reference: " << m.str();
}

TEST(StatusPage, StatusCarriesWhatThePageShows) {
  RunningMaster master(2);
  ASSERT_TRUE(master.roundTrip(1));
  // The worker counts a request's duration just after it hands the ack to
  // the kernel, so the client may hold the ack a moment before it counts.
  nlohmann::json doc;
  ASSERT_TRUE(waitUntil(
      [&] {
        HttpResponse reply = httpGet(master.metricsPort(), "/status");
        if (reply.status != 200) return false;
        doc = nlohmann::json::parse(reply.body);
        return doc.at("totals").at("latency").at("count").get<uint64_t>() >= 1;
      },
      10s))
      << doc.dump(2);
  EXPECT_EQ(doc.at("workers_configured"), 2);
  EXPECT_GT(doc.at("master_uptime_s").get<double>(), 0.0);
  EXPECT_LT(doc.at("master_uptime_s").get<double>(), 600.0);
  // One accept queue per worker index on the one address.
  std::set<std::string> indices;
  for (const auto& q : doc.at("listen_queues")) {
    indices.insert(q.at("worker").get<std::string>());
    EXPECT_GT(q.at("limit").get<unsigned>(), 0u);
    EXPECT_EQ(q.at("address"), "127.0.0.1:" + std::to_string(master.port()));
  }
  EXPECT_EQ(indices, (std::set<std::string>{"0", "1"}));
  // Buckets to take two documents apart with: one more than the bounds
  // (+Inf), summing to the count.
  const auto& latency = doc.at("totals").at("latency");
  ASSERT_EQ(latency.at("buckets").size(), latency.at("bounds_ns").size() + 1);
  uint64_t sum = 0;
  for (const auto& n : latency.at("buckets")) sum += n.get<uint64_t>();
  EXPECT_EQ(sum, latency.at("count").get<uint64_t>());
  EXPECT_EQ(doc.at("workers").at(0).at("loop_lag").at("buckets").size(),
            doc.at("workers").at(0).at("loop_lag").at("bounds_ns").size() + 1);
}

TEST(StatusPage, ShowsTheWorkersInChromiumThroughAStallAReloadAndAStoppedMaster) {
  TCPFORK_REQUIRE(::access(kChromium, X_OK) == 0, "Debian package chromium not installed");
  RunningMaster master(2);
  // 16 connections: the hash leaves a worker without one once in 2^15 runs.
  BackgroundClient load({"--addr", addr(master.port()), "-c", "16", "-w", "1", "-d", "100"});
  HeadlessBrowser browser(1280, 720);
  browser.navigate("http://127.0.0.1:" + std::to_string(master.metricsPort()) + "/");

  nlohmann::json state;
  auto filled = [&](uint64_t generation, const std::set<pid_t>& notThese) {
    state = browser.evaluate(kPageState);
    if (state.at("rows").size() != 2 || state.at("bannerShown")) return false;
    for (const auto& row : state.at("rows")) {
      if (row.at("generation") != generation || notThese.count(row.at("pid").get<pid_t>())) return false;
      if (row.at("state") != "serving" || !busy(row)) return false;
    }
    return state.at("rpsPoints").get<int>() >= 3 && state.at("p99Points").get<int>() >= 3;
  };
  // Three polls draw a line of three points; a loaded machine gets 30 s.
  ASSERT_TRUE(waitUntil([&] { return filled(1, {}); }, 30s)) << state.dump(2);
  std::set<pid_t> first;
  for (const auto& row : state.at("rows")) first.insert(row.at("pid").get<pid_t>());
  EXPECT_NE(state.at("totalRps"), "–");

  // A stopped worker's row says so within a few polls (its heartbeat ages
  // past 1 s); the bound stays under worker_timeout (10 s), after which the
  // master would replace it.
  pid_t stopped = *first.begin();
  ::kill(stopped, SIGSTOP);
  bool stallShown = waitUntil(
      [&] {
        state = browser.evaluate(kPageState);
        for (const auto& row : state.at("rows")) {
          if (row.at("pid") == stopped && row.at("lag").get<std::string>().starts_with("stalled")) return true;
        }
        return false;
      },
      8s);
  ::kill(stopped, SIGCONT);
  ASSERT_TRUE(stallShown) << state.dump(2);

  // A reload replaces both workers: the page follows them by pid, with no
  // reload of its own.
  master.process().signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return filled(2, first); }, 60s)) << state.dump(2);
  ASSERT_GE(state.at("polls").get<int>(), 4);
  browser.screenshot(screenshotPath("status-page.png"));

  // A master that stops answering (SIGSTOP: its socket still accepts, so
  // only the page's timeout can tell) gets a banner, which goes once it
  // answers again.
  master.process().signal(SIGSTOP);
  bool bannerShown = waitUntil(
      [&] {
        state = browser.evaluate(kPageState);
        return state.at("bannerShown").get<bool>();
      },
      30s);
  if (bannerShown) browser.screenshot(screenshotPath("status-page-master-down.png"));
  master.process().signal(SIGCONT);
  ASSERT_TRUE(bannerShown) << state.dump(2);
  EXPECT_NE(state.at("banner").get<std::string>().find("not answering"), std::string::npos) << state.dump(2);
  EXPECT_TRUE(waitUntil(
      [&] {
        state = browser.evaluate(kPageState);
        return !state.at("bannerShown").get<bool>() && state.at("rows").size() == 2;
      },
      30s))
      << state.dump(2);
  load.interrupt();
  ToolRun run = load.finish();
  EXPECT_EQ(run.exitCode, 0) << run.output;
}

// A worker that sheds (its slot's overloaded flag up and its shed counter
// moving, its requests' queueing delays recorded, as the worker writes them
// while it sheds by queueing delay; written here by the test) is marked in
// its row, beside its state, with its shed/s, which the totals add up, and
// its queue delay p99; the other worker's row is not. With the flag down the
// mark goes.
TEST(StatusPage, MarksAnOverloadedWorkerAndShowsItsShedRateInChromium) {
  TCPFORK_REQUIRE(::access(kChromium, X_OK) == 0, "Debian package chromium not installed");
  RunningMaster master(2);
  std::set<pid_t> pids = master.servingPids();
  ASSERT_EQ(pids.size(), 2u);
  pid_t loaded = *pids.begin();
  WorkerSlot slot(master.name(), loaded);
  slot.setOverloaded(true);
  HeadlessBrowser browser(1280, 720);
  browser.navigate("http://127.0.0.1:" + std::to_string(master.metricsPort()) + "/");

  nlohmann::json state;
  nlohmann::json loadedRow;
  nlohmann::json calmRow;
  auto rows = [&] {
    state = browser.evaluate(kPageState);
    loadedRow = calmRow = nlohmann::json();
    for (const auto& row : state.at("rows")) (row.at("pid") == loaded ? loadedRow : calmRow) = row;
    return !loadedRow.is_null() && !calmRow.is_null();
  };
  // Two polls give a rate; a loaded machine gets 30 s.
  bool shown = waitUntil(
      [&] {
        slot.addCounter(stats::Counter::kRequestsShedQueueDelay, 10);
        slot.recordQueueDelay(12'000'000);
        return rows() && moving(loadedRow.at("shed")) && moving(state.at("totalShed")) && calmRow.at("shed") == "0" &&
               loadedRow.at("queueDelay") != "–";
      },
      30s);
  if (shown) browser.screenshot(screenshotPath("status-page-overloaded.png"));
  ASSERT_TRUE(shown) << state.dump(2);
  EXPECT_EQ(loadedRow.at("state"), "serving overloaded") << state.dump(2);
  EXPECT_EQ(calmRow.at("state"), "serving") << state.dump(2);
  // 12 ms delays: the p99 is the upper bound of their bucket.
  EXPECT_EQ(loadedRow.at("queueDelay"), "25 ms") << state.dump(2);
  EXPECT_EQ(calmRow.at("queueDelay"), "–") << state.dump(2);
  // Marked in its own colour, not the stalled worker's red.
  EXPECT_NE(loadedRow.at("overloadMark"), "") << state.dump(2);
  EXPECT_NE(loadedRow.at("overloadMark"), "rgb(198, 40, 40)") << state.dump(2);

  slot.setOverloaded(false);
  EXPECT_TRUE(waitUntil([&] { return rows() && loadedRow.at("state") == "serving"; }, 10s)) << state.dump(2);
}

// The per-worker Profile control: a CPU profile of a worker whose module
// burns CPU in burn_cpu() under test_handle is drawn as a flame graph, with
// burn_cpu the widest frame on test_handle; hover, search and zoom work.
TEST(StatusPage, DrawsAFlameGraphOfAWorkerBurningCpuInChromium) {
  TCPFORK_REQUIRE(::access(kChromium, X_OK) == 0, "Debian package chromium not installed");
  std::string dir = tempPath("profiles");
  RunningMaster master(1, testModuleYaml("{burn_us: 300}") + "profile:\n  dir: " + dir + "\n  http: true\n");
  BackgroundClient load({"--addr", addr(master.port()), "-c", "8", "-w", "1", "-d", "100"});
  HeadlessBrowser browser(1280, 800);
  browser.navigate("http://127.0.0.1:" + std::to_string(master.metricsPort()) + "/");
  ASSERT_TRUE(waitUntil([&] { return browser.evaluate("!!document.querySelector('#workers button[data-kind=cpu]')") == true; }, 30s));
  browser.evaluate("document.getElementById('profile-seconds').value = 2; "
                   "document.querySelector('#workers button[data-kind=cpu]').click(); true");
  nlohmann::json state;
  ASSERT_TRUE(waitUntil([&] {
    state = browser.evaluate("document.getElementById('flame-panel').dataset.state || ''");
    return state == "drawn" || state == "failed";
  }, 30s)) << state;
  ASSERT_EQ(state, "drawn") << browser.evaluate("document.getElementById('flame-info').textContent");
  // The widest frame standing on test_handle.
  nlohmann::json widest = browser.evaluate(R"((() => {
    const onHandle = [...document.querySelectorAll('#flame rect')].filter(r => r.dataset.parent === 'test_handle');
    onHandle.sort((a, b) => Number(b.dataset.value) - Number(a.dataset.value));
    return onHandle.length ? {name: onHandle[0].dataset.name, value: Number(onHandle[0].dataset.value),
                              handle: Number([...document.querySelectorAll('#flame rect')]
                                  .find(r => r.dataset.name === 'test_handle').dataset.value)} : null;
  })())");
  ASSERT_FALSE(widest.is_null());
  EXPECT_EQ(widest.at("name"), "burn_cpu") << widest.dump();
  EXPECT_GT(widest.at("value").get<double>() * 2, widest.at("handle").get<double>()) << widest.dump();

  nlohmann::json hover = browser.evaluate(R"((() => {
    const r = [...document.querySelectorAll('#flame rect')].find(r => r.dataset.name === 'burn_cpu');
    r.dispatchEvent(new MouseEvent('mouseenter'));
    return document.getElementById('flame-info').textContent;
  })())");
  EXPECT_TRUE(std::regex_search(hover.get<std::string>(), std::regex(R"(^burn_cpu \S+ [0-9]+ samples, [0-9.]+ %$)")))
      << hover;
  nlohmann::json search = browser.evaluate(R"((() => {
    const box = document.getElementById('flame-search');
    box.value = 'burn';
    box.dispatchEvent(new Event('input'));
    return {matched: document.querySelectorAll('#flame rect.match').length,
            names: [...document.querySelectorAll('#flame rect.match')].map(r => r.dataset.name)};
  })())");
  EXPECT_GE(search.at("matched").get<int>(), 1) << search.dump();
  for (const auto& name : search.at("names")) EXPECT_NE(name.get<std::string>().find("burn"), std::string::npos);
  browser.screenshot(screenshotPath("flame-graph.png"));
  nlohmann::json zoomed = browser.evaluate(R"((() => {
    const svgWidth = document.getElementById('flame').clientWidth;
    [...document.querySelectorAll('#flame rect')].find(r => r.dataset.name === 'burn_cpu').dispatchEvent(new MouseEvent('click'));
    const r = [...document.querySelectorAll('#flame rect')].find(r => r.dataset.name === 'burn_cpu');
    return {width: Number(r.dataset.width), svgWidth};
  })())");
  EXPECT_NEAR(zoomed.at("width").get<double>(), zoomed.at("svgWidth").get<double>(), 1.0) << zoomed.dump();
  load.interrupt();
  load.finish();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace tcpfork::test
