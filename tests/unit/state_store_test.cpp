// What a cold start closes first, as kept in the state directory: it must come back exactly as
// saved, and a damaged record must be an error (the daemon then closes nothing early), never a
// half-read skeleton.
#include "enforcer/state_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace drawbridge {
namespace {

namespace fs = std::filesystem;

class ClosedSkeletonStore : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("drawbridge-state-test-" + std::to_string(::getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static SetElement box(const char* first, const char* last, const char* service) {
    return {AddressRange{*Address::parse(first), *Address::parse(last)},
            PortRange::parse(service).value(),
            {},
            {}};
  }

  fs::path dir_;
};

TEST_F(ClosedSkeletonStore, RoundTripsExactly) {
  ClosedSkeleton k;
  k.linked_v4 = {box("10.20.0.0", "10.20.0.15", "tcp/3389"),
                 box("10.20.1.5", "10.20.1.5", "udp/3389")};
  k.linked_v6 = {box("2001:db8:20::", "2001:db8:20::ffff", "tcp/22")};
  k.guarded = {{std::nullopt, PortRange::parse("tcp/5900-5901").value(), {}, {}}};
  ASSERT_TRUE(save_closed_skeleton(dir_.string(), "drawbridge", k).ok());
  auto loaded = load_closed_skeleton(dir_.string(), "drawbridge");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, k);
  // Another table's record is another file.
  auto other = load_closed_skeleton(dir_.string(), "other");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
}

TEST_F(ClosedSkeletonStore, DamagedOrWrongFamilyIsAnError) {
  const auto write = [&](const std::string& text) {
    std::ofstream(dir_ / "drawbridge.closed.json") << text;
    return load_closed_skeleton(dir_.string(), "drawbridge");
  };
  EXPECT_FALSE(write("{").ok());
  EXPECT_FALSE(write(R"({"linked_v4": [], "linked_v6": []})").ok());
  EXPECT_FALSE(write(R"({"linked_v4": [{"first": "2001:db8::", "last": "2001:db8::1",
                         "service": "tcp/22"}], "linked_v6": [], "guarded": []})")
                   .ok());
  EXPECT_FALSE(write(R"({"linked_v4": [{"first": "10.0.0.9", "last": "10.0.0.1",
                         "service": "tcp/22"}], "linked_v6": [], "guarded": []})")
                   .ok());
  EXPECT_FALSE(
      write(R"({"linked_v4": [], "linked_v6": [], "guarded": [{"service": "tcp/0-x"}]})").ok());
  EXPECT_TRUE(write(R"({"linked_v4": [], "linked_v6": [], "guarded": []})").ok());
}

}  // namespace
}  // namespace drawbridge
