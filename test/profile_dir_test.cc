// ProfileDir reads only what a worker writes: in a directory the workers'
// user owns, every other kind of entry may have been planted there.

#include "master/profiling/profile_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "test/integration/requirements.h"

namespace tcpfork {
namespace {

namespace fs = std::filesystem;

class ProfileDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tcpfork-profile-dir-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    path_ = base_ + "/profiles";
    dir_.emplace(path_, std::nullopt, std::nullopt);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ + "/" + name, std::ios::binary) << content;
    return name;
  }
  std::string refusal(const std::string& name) const {
    try {
      dir_->readProfile(name);
    } catch (const ProfileDir::Refused& e) {
      return e.what();
    }
    return "(served)";
  }

  std::string base_;
  std::string path_;
  std::optional<ProfileDir> dir_;
};

TEST_F(ProfileDirTest, ServesTheWorkersRegularFile) {
  write("t-worker0-42-a-1.prof", "older");
  auto newer = std::chrono::file_clock::now() + std::chrono::seconds(1);
  write("t-worker0-42-b-2.prof", "profile bytes");
  fs::last_write_time(path_ + "/t-worker0-42-b-2.prof", newer);
  write("t-worker0-43-c-1.prof", "another worker's");
  ASSERT_EQ(dir_->newestProfileOf(42), "t-worker0-42-b-2.prof");
  EXPECT_EQ(dir_->readProfile("t-worker0-42-b-2.prof"), "profile bytes");
  EXPECT_EQ(dir_->newestProfileOf(44), std::nullopt);
}

TEST_F(ProfileDirTest, ASymlinkIsNeitherListedNorFollowed) {
  std::string secret = base_ + "/secret";
  std::ofstream(secret) << "secret";
  write("t-worker0-42-a-1.prof", "real");
  ASSERT_EQ(::symlink(secret.c_str(), (path_ + "/t-worker0-42-z-9.prof").c_str()), 0);
  fs::last_write_time(secret, std::chrono::file_clock::now() + std::chrono::hours(1));
  EXPECT_EQ(dir_->newestProfileOf(42), "t-worker0-42-a-1.prof");
  EXPECT_NE(refusal("t-worker0-42-z-9.prof").find("a symlink; not followed"), std::string::npos);
  EXPECT_NE(refusal("../secret").find("not a file name"), std::string::npos);
}

TEST_F(ProfileDirTest, AFifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo((path_ + "/t-worker0-42-a-1.prof").c_str(), 0600), 0);
  EXPECT_EQ(dir_->newestProfileOf(42), std::nullopt);
  EXPECT_NE(refusal("t-worker0-42-a-1.prof").find("not a regular file"), std::string::npos);
}

TEST_F(ProfileDirTest, AFileWithASecondLinkIsRefused) {
  std::string outside = base_ + "/outside";
  std::ofstream(outside) << "not the worker's profile";
  ASSERT_EQ(::link(outside.c_str(), (path_ + "/t-worker0-42-a-1.prof").c_str()), 0);
  EXPECT_NE(refusal("t-worker0-42-a-1.prof").find("2 links"), std::string::npos);
}

TEST_F(ProfileDirTest, AFileOverTheLimitIsRefusedUnread) {
  write("t-worker0-42-a-1.prof", "");
  fs::resize_file(path_ + "/t-worker0-42-a-1.prof", uintmax_t(ProfileDir::kMaxProfileBytes) + 1);  // sparse
  EXPECT_NE(refusal("t-worker0-42-a-1.prof").find("over the"), std::string::npos);
}

TEST_F(ProfileDirTest, AFileOfAnotherUserIsRefused) {
  TCPFORK_REQUIRE(::geteuid() == 0, "needs root to give a file to another user");
  write("t-worker0-42-a-1.prof", "root's, say");
  ASSERT_EQ(::chown((path_ + "/t-worker0-42-a-1.prof").c_str(), 65534, 65534), 0);
  EXPECT_NE(refusal("t-worker0-42-a-1.prof").find("owned by uid 65534"), std::string::npos);
}

// Removing a partial profile that is a symlink removes the link only.
TEST_F(ProfileDirTest, RemovingAPartialProfileNeverFollowsALink) {
  std::string outside = base_ + "/outside.prof.tmp";
  std::ofstream(outside) << "keep me";
  ASSERT_EQ(::symlink(outside.c_str(), (path_ + "/t-worker0-42-a-1.prof.tmp").c_str()), 0);
  write("t-worker0-42-b-2.prof.tmp", "partial");
  EXPECT_EQ(dir_->removePartialProfilesOf(42), 2);
  EXPECT_TRUE(fs::is_empty(path_));
  EXPECT_TRUE(fs::exists(outside));
}

// The owner of the directory can rename it and plant a symlink at its path;
// the master keeps working on the directory it opened.
TEST_F(ProfileDirTest, ADirectoryMovedAndReplacedByALinkChangesNothing) {
  std::string elsewhere = base_ + "/elsewhere";
  ASSERT_TRUE(fs::create_directory(elsewhere));
  std::ofstream(elsewhere + "/t-worker0-42-a-1.prof") << "elsewhere";
  std::ofstream(elsewhere + "/t-worker0-42-a-1.prof.tmp") << "elsewhere";
  fs::rename(path_, base_ + "/moved");
  ASSERT_EQ(::symlink(elsewhere.c_str(), path_.c_str()), 0);
  EXPECT_EQ(dir_->newestProfileOf(42), std::nullopt);
  EXPECT_EQ(dir_->removePartialProfilesOf(42), 0);
  EXPECT_TRUE(fs::exists(elsewhere + "/t-worker0-42-a-1.prof.tmp"));
}

}  // namespace
}  // namespace tcpfork
