// Boots a real nucleus with the built-in fs module confined to a temporary
// folder and calls tool.fs.{read,write,list,search} over the bus on real
// files: escape attempts (.., absolute paths, symbolic links out), caps,
// atomic replacement, line ranges, binary files and argument errors.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../common/allowed_roots.h"
#include "../common/tool_args.h"
#include "../common/tool_test_support.h"
#include "lotus/manifest.h"

namespace lotus::tools {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

void write_file(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class FsModuleTest : public testing::ToolModuleFixture {
 protected:
  void boot_fs(Json config = Json::object()) { boot({"tools/fs"}, {{"fs", std::move(config)}}); }
  Json read(Json args) { return ok("fs", "read", std::move(args)); }
  std::string refused(std::string_view tool, Json args) {
    return error("fs", tool, std::move(args));
  }
};

TEST(FsManifest, DeclaresTheFourToolsWithSchemasAndPermissions) {
  auto manifest =
      load_manifest(fs::path(LOTUS_SOURCE_DIR) / "modules" / "tools" / "fs" / "manifest.yaml");
  ASSERT_TRUE(manifest.ok()) << message_of(manifest.status());
  EXPECT_EQ(manifest->name, "fs");
  for (const char* tool : {"read", "write", "list", "search"}) {
    const Manifest::Tool* t = manifest->find_tool(tool);
    ASSERT_NE(t, nullptr) << tool;
    EXPECT_FALSE(t->description.empty()) << tool;
    for (const auto& [name, property] : t->parameters["properties"].items()) {
      EXPECT_TRUE(property.contains("description")) << tool << "." << name;
    }
  }
  EXPECT_EQ(manifest->find_tool("read")->parameters["required"], Json::array({"path"}));
  EXPECT_EQ(manifest->find_tool("write")->parameters["required"], Json::array({"path", "content"}));
  EXPECT_TRUE(manifest->has_permission("file.read"));
  EXPECT_TRUE(manifest->has_permission("file.write"));
  EXPECT_EQ(manifest->config_defaults["roots"], Json::array({"."}));
}

TEST_F(FsModuleTest, ReadsAFileByRelativeOrAbsolutePath) {
  write_file(root() / "notes" / "a.txt", "hello\nworld\n");
  boot_fs();
  Json result = read({{"path", "notes/a.txt"}});
  EXPECT_EQ(result["content"], "hello\nworld\n");
  EXPECT_EQ(result["path"], (root_ / "notes" / "a.txt").string());
  EXPECT_EQ(result["size"], 12);
  EXPECT_EQ(result["truncated"], false);
  EXPECT_EQ(read({{"path", (root_ / "notes/./x/../a.txt").string()}})["content"], "hello\nworld\n");
}

TEST_F(FsModuleTest, RefusesEveryWayOutOfTheRoots) {
  write_file(outside() / "secret.txt", "top secret");
  write_file(root() / "inside.txt", "fine");
  fs::create_symlink(outside() / "secret.txt", root() / "link_out.txt");
  fs::create_directory_symlink(outside(), root() / "dir_out");
  fs::create_symlink(outside() / "missing.txt", root() / "dangling");
  fs::create_symlink(root() / "inside.txt", root() / "link_in.txt");
  boot_fs();

  for (const std::string& path :
       {std::string("../outside/secret.txt"), std::string("sub/../../outside/secret.txt"),
        (outside_ / "secret.txt").string(), std::string("link_out.txt"),
        std::string("dir_out/secret.txt"), std::string("/etc/passwd"), std::string("/")}) {
    std::string why = refused("read", {{"path", path}});
    EXPECT_THAT(why, HasSubstr("path: ")) << path;
    EXPECT_THAT(why, HasSubstr("outside the allowed folders")) << path;
    EXPECT_THAT(why, Not(HasSubstr("top secret"))) << path;
  }
  // Writing through a link out, a folder link out, or a dangling link.
  EXPECT_THAT(refused("write", {{"path", "link_out.txt"}, {"content", "x"}}),
              HasSubstr("outside the allowed folders"));
  EXPECT_THAT(refused("write", {{"path", "dir_out/new.txt"}, {"content", "x"}}),
              HasSubstr("outside the allowed folders"));
  EXPECT_THAT(refused("write", {{"path", "dangling"}, {"content", "x"}}),
              HasSubstr("target does not exist"));
  EXPECT_THAT(refused("write", {{"path", "../outside/new.txt"}, {"content", "x"}}),
              HasSubstr("outside the allowed folders"));
  EXPECT_FALSE(fs::exists(outside() / "missing.txt"));
  EXPECT_FALSE(fs::exists(outside() / "new.txt"));
  EXPECT_EQ(read_file(outside() / "secret.txt"), "top secret");
  EXPECT_THAT(refused("list", {{"path", "dir_out"}}), HasSubstr("outside the allowed folders"));
  EXPECT_THAT(refused("search", {{"path", ".."}, {"content", "secret"}}),
              HasSubstr("outside the allowed folders"));

  // A link that stays inside is fine.
  EXPECT_EQ(read({{"path", "link_in.txt"}})["content"], "fine");
}

TEST_F(FsModuleTest, DeniedFoldersStayOutOfReachInsideARoot) {
  write_file(root() / "keys" / "id_rsa", "PRIVATE KEY");
  write_file(root() / "code.txt", "KEY usage");
  boot_fs({{"deny", {(root() / "keys").string()}}});
  EXPECT_THAT(refused("read", {{"path", "keys/id_rsa"}}), HasSubstr("config `deny`"));
  EXPECT_THAT(refused("list", {{"path", "keys"}}), HasSubstr("config `deny`"));
  Json found = ok("fs", "search", {{"content", "KEY"}});
  ASSERT_EQ(found["matches"].size(), 1u) << found.dump();
  EXPECT_EQ(found["matches"][0]["text"], "KEY usage");
  Json listed = ok("fs", "list", {{"recursive", true}});
  ASSERT_EQ(listed["entries"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["entries"][0]["path"], "code.txt");
}

TEST(AllowedRoots, LeavesOutARelativeRootThatIsTheWholeFileSystem) {
  const auto previous = fs::current_path();
  fs::current_path("/");
  std::vector<std::string> problems;
  auto roots = AllowedRoots::from_config(Json::array({"."}), Json::array(), &problems);
  fs::current_path(previous);
  ASSERT_TRUE(roots.ok());
  EXPECT_TRUE(roots->roots().empty());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("whole file system"));
  EXPECT_THAT(std::string(message_of(roots->resolve_text("/etc/passwd", "path").status())),
              HasSubstr("no folder is allowed"));
  auto explicit_root = AllowedRoots::from_config(Json::array({"/"}), Json::array(), &problems);
  ASSERT_TRUE(explicit_root.ok());
  EXPECT_EQ(explicit_root->roots(), std::vector<fs::path>{"/"});
}

TEST_F(FsModuleTest, ReadIsCappedAndContinuesFromNextOffset) {
  write_file(root() / "big.txt", "0123456789abcdefghijklmno");
  boot_fs({{"max_read_bytes", 10}});
  Json first = read({{"path", "big.txt"}});
  EXPECT_EQ(first["content"], "0123456789");
  EXPECT_EQ(first["truncated"], true);
  EXPECT_EQ(first["next_offset"], 10);
  Json second = read({{"path", "big.txt"}, {"offset", 20}, {"max_bytes", 100}});
  EXPECT_EQ(second["content"], "klmno");
  EXPECT_EQ(second["truncated"], false);
  EXPECT_EQ(read({{"path", "big.txt"}, {"max_bytes", 3}})["content"], "012");
}

TEST_F(FsModuleTest, ReadsLineRanges) {
  write_file(root() / "lines.txt", "one\ntwo\nthree\nfour\nfive");
  boot_fs({{"max_read_bytes", 10}});
  Json middle = read({{"path", "lines.txt"}, {"start_line", 2}, {"end_line", 3}});
  EXPECT_EQ(middle["content"], "two\nthree\n");
  EXPECT_EQ(middle["end_line"], 3);
  EXPECT_EQ(middle["truncated"], false);
  Json tail = read({{"path", "lines.txt"}, {"start_line", 4}});
  EXPECT_EQ(tail["content"], "four\nfive");
  EXPECT_EQ(tail["end_line"], 5);
  // The cap (10 bytes) cuts at the last whole line and says where to go on.
  Json capped = read({{"path", "lines.txt"}, {"start_line", 1}});
  EXPECT_EQ(capped["content"], "one\ntwo\n");
  EXPECT_EQ(capped["truncated"], true);
  EXPECT_EQ(capped["next_line"], 3);
  EXPECT_THAT(refused("read", {{"path", "lines.txt"}, {"start_line", 3}, {"end_line", 2}}),
              HasSubstr("end_line"));
}

TEST_F(FsModuleTest, DetectsBinaryFilesAndReadsThemAsBase64) {
  const std::string bytes(
      "\x7f"
      "ELF\0\x01\x02\xff",
      8);
  write_file(root() / "prog.bin", bytes);
  write_file(root() / "latin1.txt", "caf\xe9");
  boot_fs();
  Json text = read({{"path", "prog.bin"}});
  EXPECT_EQ(text["binary"], true);
  EXPECT_EQ(text["content"], "");
  EXPECT_THAT(text["note"].get<std::string>(), HasSubstr("base64"));
  Json b64 = read({{"path", "prog.bin"}, {"encoding", "base64"}});
  EXPECT_EQ(base64_decode(b64["content"].get<std::string>()), bytes);
  Json latin = read({{"path", "latin1.txt"}});
  EXPECT_EQ(latin["content"], "caf\xEF\xBF\xBD");
  EXPECT_EQ(latin["lossy"], true);
}

TEST_F(FsModuleTest, OverwriteReplacesTheFileAtomicallyAndKeepsItsMode) {
  write_file(root() / "config.ini", "old contents");
  fs::permissions(root() / "config.ini", fs::perms(0640));
  // A second name for the old file: an in-place write would change it too,
  // a rename over the name leaves it as it was.
  fs::create_hard_link(root() / "config.ini", root() / "old_link");
  boot_fs();
  Json result = ok("fs", "write", {{"path", "config.ini"}, {"content", "new"}});
  EXPECT_EQ(result["bytes_written"], 3);
  EXPECT_EQ(result["created"], false);
  EXPECT_EQ(result["size"], 3);
  EXPECT_EQ(read_file(root() / "config.ini"), "new");
  EXPECT_EQ(read_file(root() / "old_link"), "old contents");
  EXPECT_EQ(fs::status(root() / "config.ini").permissions(), fs::perms(0640));
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(root())) ++files;
  EXPECT_EQ(files, 2u) << "no temporary file left behind";
}

TEST_F(FsModuleTest, AppendsCreatesAndMakesFoldersOnlyWhenAsked) {
  boot_fs({{"max_write_bytes", 16}});
  EXPECT_THAT(refused("write", {{"path", "a/b/c.txt"}, {"content", "x"}}),
              HasSubstr("create_dirs"));
  EXPECT_EQ(ok("fs", "write",
               {{"path", "a/b/c.txt"}, {"content", "x"}, {"create_dirs", true}})["created"],
            true);
  ok("fs", "write", {{"path", "a/b/c.txt"}, {"content", "yz"}, {"mode", "append"}});
  EXPECT_EQ(read_file(root() / "a/b/c.txt"), "xyz");
  EXPECT_THAT(refused("write", {{"path", "a/b/c.txt"}, {"content", "n"}, {"mode", "create"}}),
              HasSubstr("already exists"));
  EXPECT_EQ(read_file(root() / "a/b/c.txt"), "xyz");
  ok("fs", "write", {{"path", "fresh.txt"}, {"content", "n"}, {"mode", "create"}});
  EXPECT_EQ(read_file(root() / "fresh.txt"), "n");
  EXPECT_THAT(refused("write", {{"path", "big.txt"}, {"content", std::string(17, 'x')}}),
              HasSubstr("max_write_bytes"));
  EXPECT_THAT(refused("write", {{"path", "a"}, {"content", "x"}}), HasSubstr("is a folder"));
  EXPECT_THAT(refused("write", {{"path", "x.txt"}, {"content", "x"}, {"mode", "truncate"}}),
              HasSubstr("mode: "));
}

TEST_F(FsModuleTest, DefendsAgainstWrongArgumentTypes) {
  write_file(root() / "a.txt", "a");
  boot_fs();
  EXPECT_THAT(refused("read", Json::object()), HasSubstr("path: expected a path"));
  EXPECT_THAT(refused("read", {{"path", 42}}), HasSubstr("path: expected a path"));
  EXPECT_THAT(refused("read", {{"path", "a.txt"}, {"offset", "ten"}}),
              HasSubstr("offset: expected an integer"));
  EXPECT_THAT(refused("read", {{"path", "a.txt"}, {"offset", -1}}), HasSubstr("offset: must be"));
  EXPECT_THAT(refused("read", {{"path", "a.txt"}, {"encoding", "hex"}}), HasSubstr("encoding"));
  EXPECT_THAT(refused("read", {{"path", "missing.txt"}}), HasSubstr("No such file"));
  EXPECT_THAT(refused("read", {{"path", "."}}), HasSubstr("use the list tool"));
  EXPECT_THAT(refused("write", {{"path", "a.txt"}, {"content", 5}}),
              HasSubstr("content: expected a string"));
  EXPECT_THAT(refused("write", {{"path", "a.txt"}}), HasSubstr("content: required"));
  EXPECT_THAT(refused("list", {{"recursive", "yes"}}), HasSubstr("recursive: expected true"));
  EXPECT_THAT(refused("search", Json::array({1, 2})), HasSubstr("arguments: expected a JSON"));
  EXPECT_THAT(refused("search", {{"path", "."}}), HasSubstr("name, content"));
}

TEST_F(FsModuleTest, ListsEntriesWithTypeSizeAndTime) {
  write_file(root() / "src" / "main.cc", "int main() {}\n");
  write_file(root() / "src" / "deep" / "x.h", "");
  write_file(root() / ".git" / "HEAD", "ref");
  write_file(root() / "README", "hi");
  fs::create_directory_symlink(outside(), root() / "out");
  write_file(outside() / "hidden_from_list.txt", "x");
  boot_fs();

  Json top = ok("fs", "list", Json::object());
  EXPECT_EQ(top["path"], root_.string());
  std::vector<std::string> names;
  for (const Json& e : top["entries"]) names.push_back(e["path"]);
  EXPECT_THAT(names, ::testing::ElementsAre(".git", "README", "out", "src"));
  const Json& readme = top["entries"][1];
  EXPECT_EQ(readme["type"], "file");
  EXPECT_EQ(readme["size"], 2);
  EXPECT_THAT(readme["mtime"].get<std::string>(), ::testing::MatchesRegex("20[0-9-]+T[0-9:]+Z"));
  EXPECT_EQ(top["entries"][2]["type"], "symlink");
  EXPECT_EQ(top["entries"][2]["target"], outside().string());
  EXPECT_EQ(top["entries"][3]["type"], "dir");

  Json all = ok("fs", "list", {{"recursive", true}, {"include_hidden", false}});
  names.clear();
  for (const Json& e : all["entries"]) names.push_back(e["path"]);
  EXPECT_THAT(names, ::testing::ElementsAre("README", "out", "src", "src/deep", "src/deep/x.h",
                                            "src/main.cc"));
  Json with_git = ok("fs", "list", {{"recursive", true}});
  names.clear();
  for (const Json& e : with_git["entries"]) names.push_back(e["path"]);
  EXPECT_THAT(names, ::testing::Contains(".git"));
  EXPECT_THAT(names, Not(::testing::Contains(".git/HEAD"))) << "skip_dirs are not entered";
  Json shallow = ok("fs", "list", {{"recursive", true}, {"max_depth", 1}});
  EXPECT_EQ(shallow["entries"].size(), 4u);
  Json capped = ok("fs", "list", {{"recursive", true}, {"max_entries", 2}});
  EXPECT_EQ(capped["entries"].size(), 2u);
  EXPECT_EQ(capped["truncated"], true);
  EXPECT_THAT(refused("list", {{"path", "README"}}), HasSubstr("is not a folder"));
}

TEST_F(FsModuleTest, SearchesByNameAndContent) {
  write_file(root() / "src" / "a.cc", "int Alpha = 1;\n// TODO: beta\n");
  write_file(root() / "src" / "b.h", "// todo later\nint gamma;\n");
  write_file(root() / "docs" / "notes.md", "TODO list\n");
  write_file(root() / "blob.bin", std::string("TODO\0binary", 11));
  write_file(root() / "node_modules" / "dep.cc", "TODO in a dependency\n");
  fs::create_directory_symlink(outside(), root() / "out");
  write_file(outside() / "leak.cc", "TODO outside\n");
  boot_fs();

  Json by_name = ok("fs", "search", {{"name", "*.cc"}});
  ASSERT_EQ(by_name["matches"].size(), 1u) << by_name.dump();
  EXPECT_EQ(by_name["matches"][0]["path"], (root_ / "src" / "a.cc").string());

  Json todo = ok("fs", "search", {{"content", "TODO"}});
  std::vector<std::string> found;
  for (const Json& m : todo["matches"]) {
    found.push_back(cat(fs::path(m["path"].get<std::string>()).filename().string(), ":",
                        m["line"].get<int>(), ":", m["text"].get<std::string>()));
  }
  std::sort(found.begin(), found.end());
  EXPECT_THAT(found, ::testing::ElementsAre("a.cc:2:// TODO: beta", "notes.md:1:TODO list"));
  EXPECT_EQ(todo["skipped"]["binary"], 1);

  Json any_case = ok("fs", "search", {{"content", "todo"}, {"case_sensitive", false}});
  EXPECT_EQ(any_case["matches"].size(), 3u) << any_case.dump();
  Json both = ok("fs", "search", {{"content", "todo"}, {"name", "*.h"}});
  ASSERT_EQ(both["matches"].size(), 1u);
  EXPECT_EQ(both["matches"][0]["line"], 1);
  Json regex = ok("fs", "search", {{"content", "^int [a-z]+;$"}, {"regex", true}});
  ASSERT_EQ(regex["matches"].size(), 1u) << regex.dump();
  EXPECT_EQ(regex["matches"][0]["text"], "int gamma;");
  Json capped =
      ok("fs", "search", {{"content", "o"}, {"case_sensitive", false}, {"max_results", 2}});
  EXPECT_EQ(capped["matches"].size(), 2u);
  EXPECT_EQ(capped["truncated"], true);
  EXPECT_THAT(refused("search", {{"content", "(unclosed"}, {"regex", true}}),
              HasSubstr("content: not a valid regular expression"));
}

}  // namespace
}  // namespace lotus::tools
