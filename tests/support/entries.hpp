#pragma once
// Test helpers for the core: a fixed instant, Nightscout entries built in one line, and Catch2
// printers so that a failed comparison shows the values instead of "{?}".

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include <catch2/catch.hpp>

#include "scout/core/ar2.hpp"
#include "scout/core/evaluate.hpp"
#include "scout/core/reading.hpp"

namespace scout::test {

// 2024-05-24T19:46:40Z, the `date` of Nightscout's example entry (protocols.md §1.3). Tests
// express every instant relative to it, e.g. k_t0 - 5min.
inline const core::TimePoint k_t0{std::chrono::milliseconds{1716580000000}};

// An sgv entry at `date`.
inline core::Entry entry(core::TimePoint date, int sgv, std::string direction = "Flat") {
  return core::Entry{date, sgv, std::move(direction)};
}

}  // namespace scout::test

namespace Catch {

template <>
struct StringMaker<scout::core::TimePoint> {
  static std::string convert(const scout::core::TimePoint& t) {
    const auto ms = t.time_since_epoch().count();
    const auto offset = (t - scout::test::k_t0).count();
    return std::to_string(ms) + "ms (t0" + (offset >= 0 ? "+" : "") + std::to_string(offset) +
           "ms)";
  }
};

template <>
struct StringMaker<scout::core::Entry> {
  static std::string convert(const scout::core::Entry& e) {
    return "{date " + StringMaker<scout::core::TimePoint>::convert(e.date) + ", sgv " +
           std::to_string(e.sgv) + ", " + e.direction + "}";
  }
};

template <>
struct StringMaker<scout::core::ar2::Point> {
  static std::string convert(const scout::core::ar2::Point& p) {
    return "{" + StringMaker<scout::core::TimePoint>::convert(p.at) + ", " +
           std::to_string(p.mgdl) + " mg/dL}";
  }
};

template <>
struct StringMaker<scout::core::Alarm> {
  static std::string convert(const scout::core::Alarm& a) {
    return std::string("{") + scout::core::to_string(a.kind) + ", " +
           scout::core::to_string(a.severity) + "}";
  }
};

template <>
struct StringMaker<std::optional<scout::core::Alarm>> {
  static std::string convert(const std::optional<scout::core::Alarm>& a) {
    return a ? StringMaker<scout::core::Alarm>::convert(*a) : std::string("none");
  }
};

template <>
struct StringMaker<std::optional<int>> {
  static std::string convert(const std::optional<int>& v) {
    return v ? std::to_string(*v) : std::string("none");
  }
};

}  // namespace Catch
