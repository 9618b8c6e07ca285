#include "handlers/journal/segment_files.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

namespace tcpfork::journal {

namespace {

bool endsWith(std::string_view text, std::string_view suffix) {
  return text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::string writerName(uint32_t worker, uint64_t startNs, uint32_t pid) {
  time_t seconds = time_t(startNs / 1'000'000'000);
  struct tm utc{};
  ::gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &utc);
  char name[96];
  std::snprintf(name, sizeof name, "w%03u-%s.%06uZ-%u", worker, stamp, unsigned(startNs / 1000 % 1'000'000), pid);
  return name;
}

std::string segmentName(uint32_t worker, uint64_t startNs, uint32_t pid, uint32_t sequence) {
  char tail[32];
  std::snprintf(tail, sizeof tail, "-%06u%s", sequence, kOpenSuffix.data());
  return writerName(worker, startNs, pid) + tail;
}

std::string durableMarkName(const std::string& writer) { return writer + std::string(kDurableSuffix); }

bool isDurableMark(std::string_view name) { return endsWith(name, kDurableSuffix); }

bool isOpenSegment(std::string_view name) { return endsWith(name, kOpenSuffix); }

bool isSegment(std::string_view name) { return endsWith(name, kSealedSuffix) || endsWith(name, kOpenSuffix); }

std::string sealedName(std::string_view openName) {
  return std::string(openName.substr(0, openName.size() - kOpenSuffix.size())) + std::string(kSealedSuffix);
}

std::vector<std::string> segmentsIn(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto status = fs::status(path, ec);
  if (ec) throw std::system_error(ec, path);
  if (!fs::is_directory(status)) return {path};
  std::vector<std::string> files;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (isSegment(it->path().filename().string()) && it->is_regular_file()) files.push_back(it->path().string());
  }
  if (ec) throw std::system_error(ec, path);
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace tcpfork::journal
