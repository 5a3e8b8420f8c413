#include "common/path_confinement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace dino {
namespace {

using ::testing::HasSubstr;

class PathConfinementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dino_confine_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    char resolved[PATH_MAX];
    ASSERT_NE(::realpath(tmpl, resolved), nullptr);
    dir_ = resolved;
    root_ = dir_ + "/data";
    outside_ = dir_ + "/secret";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/mnist").c_str(), 0755), 0);
    std::ofstream(root_ + "/mnist/train.idx") << "x";
    std::ofstream(outside_ + "/passwd") << "x";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  PathConfinement Confine(const std::vector<std::string>& roots) {
    absl::StatusOr<PathConfinement> c = PathConfinement::Create(roots);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : PathConfinement::Unconfined();
  }

  std::string dir_, root_, outside_;
};

TEST_F(PathConfinementTest, AcceptsPathsUnderARoot) {
  PathConfinement c = Confine({root_});
  EXPECT_EQ(*c.Check("data.path", root_ + "/mnist/train.idx"), root_ + "/mnist/train.idx");
  EXPECT_EQ(*c.Check("data.path", root_), root_);
  EXPECT_EQ(*c.Check("data.path", root_ + "/mnist/"), root_ + "/mnist");
  EXPECT_EQ(*c.Check("data.path", root_ + "//mnist//train.idx"), root_ + "/mnist/train.idx");
  EXPECT_EQ(*c.Check("data.path", root_ + "//later//a.idx"), root_ + "/later/a.idx");
  // Not there yet (the coordinator may not mount the data): checked as written.
  EXPECT_EQ(*c.Check("data.path", root_ + "/later/a.idx"), root_ + "/later/a.idx");
}

TEST_F(PathConfinementTest, RejectsDotDotEscapesEvenWhenTheyWouldLandInside) {
  PathConfinement c = Confine({root_});
  for (const std::string& path : {root_ + "/../secret/passwd", root_ + "/mnist/../../secret",
                                  root_ + "/mnist/../train.idx", root_ + "/./mnist"}) {
    absl::StatusOr<std::string> r = c.Check("data.eval_path", path);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("data.eval_path"));
    EXPECT_THAT(r.status().message(), HasSubstr(root_));
  }
}

TEST_F(PathConfinementTest, RejectsAbsoluteAndRelativePathsOutsideTheRoots) {
  PathConfinement c = Confine({root_});
  absl::StatusOr<std::string> r = c.Check("data.path", "/etc/passwd");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "data.path \"/etc/passwd\" must lie under one of the data roots [" + root_ + "]");
  EXPECT_FALSE(c.Check("data.path", outside_ + "/passwd").ok());
  // A sibling whose name starts with the root's name is not under it.
  ASSERT_EQ(::mkdir((root_ + "2").c_str(), 0755), 0);
  EXPECT_FALSE(c.Check("data.path", root_ + "2/x").ok());
  EXPECT_THAT(c.Check("data.path", "mnist/train.idx").status().message(),
              HasSubstr("must be an absolute path"));
  EXPECT_FALSE(c.Check("data.path", "").ok());
  EXPECT_FALSE(c.Check("data.path", std::string("/data\0/x", 8)).ok());
}

TEST_F(PathConfinementTest, RejectsSymlinksThatEscape) {
  ASSERT_EQ(::symlink(outside_.c_str(), (root_ + "/link").c_str()), 0);
  ASSERT_EQ(::symlink((outside_ + "/passwd").c_str(), (root_ + "/file_link").c_str()), 0);
  ASSERT_EQ(::symlink("../secret", (root_ + "/relative_link").c_str()), 0);
  PathConfinement c = Confine({root_});
  for (const std::string& path : {root_ + "/link", root_ + "/link/passwd", root_ + "/file_link",
                                  root_ + "/relative_link/passwd", root_ + "/link/not_yet"}) {
    absl::StatusOr<std::string> r = c.Check("data.labels_path", path);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_THAT(r.status().message(), HasSubstr("resolves to " + outside_));
  }
  // A symlink that stays inside is fine.
  ASSERT_EQ(::symlink((root_ + "/mnist").c_str(), (root_ + "/alias").c_str()), 0);
  EXPECT_EQ(*c.Check("data.path", root_ + "/alias/train.idx"), root_ + "/mnist/train.idx");
}

TEST_F(PathConfinementTest, ARootThatIsASymlinkIsComparedByItsTarget) {
  const std::string link_root = dir_ + "/data_link";
  ASSERT_EQ(::symlink(root_.c_str(), link_root.c_str()), 0);
  PathConfinement c = Confine({link_root});
  EXPECT_EQ(c.roots(), std::vector<std::string>{root_});
  EXPECT_EQ(*c.Check("data.path", link_root + "/mnist/train.idx"), root_ + "/mnist/train.idx");
  EXPECT_EQ(*c.Check("data.path", root_ + "/mnist/train.idx"), root_ + "/mnist/train.idx");
  EXPECT_FALSE(c.Check("data.path", outside_ + "/passwd").ok());
}

TEST_F(PathConfinementTest, SeveralRootsFromAFlag) {
  absl::StatusOr<PathConfinement> c = PathConfinement::FromFlag(root_ + ", " + outside_ + ",");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->RootsText(), "[" + root_ + ", " + outside_ + "]");
  EXPECT_TRUE(c->Check("data.path", outside_ + "/passwd").ok());
  EXPECT_TRUE(c->Check("data.path", root_ + "/mnist").ok());
  EXPECT_FALSE(c->Check("data.path", dir_).ok());
  EXPECT_FALSE(PathConfinement::FromFlag("").ok());
  EXPECT_FALSE(PathConfinement::FromFlag("relative/dir").ok());
  EXPECT_FALSE(PathConfinement::FromFlag("/a/../b").ok());
}

TEST_F(PathConfinementTest, RootSlashAcceptsEveryAbsolutePathButStillRejectsDotDot) {
  PathConfinement c = Confine({"/"});
  EXPECT_TRUE(c.Check("data.path", "/etc/passwd").ok());
  EXPECT_FALSE(c.Check("data.path", "/etc/../etc/passwd").ok());
}

TEST(PathConfinementUnconfinedTest, AcceptsAnything) {
  PathConfinement c = PathConfinement::Unconfined();
  EXPECT_FALSE(c.confined());
  EXPECT_EQ(*c.Check("data.path", "relative/../x"), "relative/../x");
}

}  // namespace
}  // namespace dino
