// Whole-file reads and writes for tests and benchmarks.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace lotus::testing {

inline void write_file(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// The whole file, or "" when it cannot be read.
inline std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace lotus::testing
