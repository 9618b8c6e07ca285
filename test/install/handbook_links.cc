#include "test/install/handbook_links.h"

#include <algorithm>
#include <regex>
#include <sstream>

#include "test/integration/process.h"

namespace tcpfork::test {

namespace fs = std::filesystem;

std::vector<ProseLine> proseLines(const std::string& markdown) {
  std::vector<ProseLine> lines;
  std::istringstream in(markdown);
  bool fenced = false;
  size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.starts_with("```")) {
      fenced = !fenced;
      continue;
    }
    if (!fenced) lines.push_back({number, line});
  }
  return lines;
}

std::vector<std::string> handbookPages(const fs::path& root) {
  std::vector<std::string> pages = {"README.md"};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root / "docs", ec)) {
    if (entry.path().extension() == ".md") pages.push_back("docs/" + entry.path().filename().string());
  }
  std::sort(pages.begin() + 1, pages.end());
  return pages;
}

std::vector<LocalLink> localLinks(const fs::path& root, const std::string& page) {
  static const std::regex kLink(R"(\]\(([^)\s]+)\))");
  std::vector<LocalLink> links;
  for (const ProseLine& line : proseLines(readFile((root / page).string()))) {
    for (std::sregex_iterator it(line.text.begin(), line.text.end(), kLink), end; it != end; ++it) {
      std::string target = (*it)[1];
      if (target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:")) continue;
      size_t hash = target.find('#');
      std::string file = target.substr(0, hash);
      links.push_back({page + ":" + std::to_string(line.number) + ": " + target,
                       file.empty() ? root / page : (root / page).parent_path() / file,
                       hash == std::string::npos ? "" : target.substr(hash + 1)});
    }
  }
  return links;
}

std::vector<std::string> linksToNoFile(const fs::path& root) {
  std::string inside = (root.lexically_normal() / "").string();
  std::vector<std::string> broken;
  for (const std::string& page : handbookPages(root)) {
    for (const LocalLink& link : localLinks(root, page)) {
      std::string path = link.file.lexically_normal().string();
      if (!path.starts_with(inside) || !fs::exists(link.file)) broken.push_back(link.where);
    }
  }
  return broken;
}

}  // namespace tcpfork::test
