#pragma once
// The live status page served at / on the admin HTTP: one HTML document with
// its script and style inline (master/admin/status_page.html, embedded at build
// time by cmake/embed_text.cmake), which polls /status once a second.

#include <string_view>

namespace tcpfork {

std::string_view statusPageHtml();

}  // namespace tcpfork
