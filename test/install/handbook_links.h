#pragma once
// The handbook's pages and their links, read the same way from the source
// tree (README.md, docs/*.md) and from an installed copy of it
// (share/doc/tcpfork/README.md, share/doc/tcpfork/docs/*.md), which keeps
// that layout so that the links between pages work there too.

#include <filesystem>
#include <string>
#include <vector>

namespace tcpfork::test {

struct ProseLine {
  size_t number;
  std::string text;
};

// The lines of `markdown` outside fenced code blocks.
std::vector<ProseLine> proseLines(const std::string& markdown);

// README.md and every docs/*.md under `root`, as paths relative to it: the
// README first, then the pages in name order.
std::vector<std::string> handbookPages(const std::filesystem::path& root);

// A link from a page to a file of its own tree (not http, https or mailto).
struct LocalLink {
  std::string where;            // "docs/index.md:54: man/"
  std::filesystem::path file;   // what it names, from the page's directory; the page itself for "#anchor"
  std::string anchor;           // after '#'; empty when there is none
};

// The local links of `page` (relative to `root`), in order.
std::vector<LocalLink> localLinks(const std::filesystem::path& root, const std::string& page);

// "page:line: target" of each local link of the handbook under `root` that
// names no file of that tree: a missing one, or one outside `root`.
std::vector<std::string> linksToNoFile(const std::filesystem::path& root);

}  // namespace tcpfork::test
