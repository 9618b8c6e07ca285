// HELP text in the exposition: prometheus-cpp writes it as given, so the
// collector escapes it as the text format wants (master/admin/metrics_collector.h).

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <string>

#include "master/admin/metrics_collector.h"

namespace tcpfork {
namespace {

TEST(PrometheusHelp, EscapesBackslashAndNewlineAsTheTextFormatSays) {
  EXPECT_EQ(prometheusHelp("Requests the handler saw."), "Requests the handler saw.");
  EXPECT_EQ(prometheusHelp(R"(C:\dir)"), R"(C:\\dir)");
  EXPECT_EQ(prometheusHelp("one\ntwo\n"), R"(one\ntwo\n)");
  EXPECT_EQ(prometheusHelp("gr\u00fc\u00dfe"), "gr\u00fc\u00dfe");
}

// The format knows no other escape ("\x1b" in a HELP line is a parse
// error), so other control characters and stray bytes are spelled out, with
// their backslash escaped: Prometheus shows the four characters \x1b.
TEST(PrometheusHelp, SpellsOutWhatIsNotPrintableUtf8) {
  EXPECT_EQ(prometheusHelp("a\rb\x1b[2J\x7f\xff"), R"(a\\rb\\x1b[2J\\x7f\\xff)");
  EXPECT_EQ(prometheusHelp("x\nfake_injected_metric 12345\n# \x1b"), R"(x\nfake_injected_metric 12345\n# \\x1b)");
}

// If a later prometheus-cpp escaped HELP itself, ours would be escaped twice.
TEST(PrometheusHelp, ReachesTheExpositionAsWritten) {
  prometheus::MetricFamily family;
  family.name = "tcp_server_handler_evil_total";
  family.help = prometheusHelp("a\\b\nfake_injected_metric 12345");
  family.type = prometheus::MetricType::Counter;
  family.metric.emplace_back().counter.value = 1;
  std::string text = prometheus::TextSerializer().Serialize({family});
  EXPECT_EQ(text.substr(0, text.find('\n') + 1),
            "# HELP tcp_server_handler_evil_total a\\\\b\\nfake_injected_metric 12345\n")
      << text;
  EXPECT_EQ(text.find("\nfake_injected_metric"), std::string::npos) << text;
}

}  // namespace
}  // namespace tcpfork
