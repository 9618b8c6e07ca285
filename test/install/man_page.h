#pragma once
// Reading man pages in tests: the generated page of a binary, the text of one
// section of its roff source, and what man(1) warns about when rendering it.

#include <string>
#include <vector>

#include "test/integration/tool_run.h"

namespace tcpfork::test {

// build/man/man<section>/<page>, e.g. manPagePath("tcpfork.8").
std::string manPagePath(const std::string& page);

// Titles of the page's sections (.SH), in order.
std::vector<std::string> manSectionTitles(const std::string& roff);

// The roff text of section `title` up to the next one, with font escapes
// (\fB, \fI, \fR) and \& removed, so "--listen" reads as written.
std::string manSection(const std::string& roff, const std::string& title);

// Renders the page as Debian's lintian does (man --warnings, UTF-8, 80
// columns) and returns man's exit code and what it printed on stderr.
ToolRun renderManPage(const std::string& path);

}  // namespace tcpfork::test
