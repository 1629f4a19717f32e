// `lotus memory ...` run as a user would: every command is a new process on
// the same data folder, so each one is also a restart.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lotus/event.h"
#include "support/test_env.h"
#include "testing/http_replay_server.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class MemoryCliTest : public ::testing::Test {
 protected:
  testing::ProcessResult run(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {LOTUS_BINARY, "--data-dir", data_dir().string()});
    std::map<std::string, std::string> env = {
        {"HOME", (dir_.path() / "home").string()},
        {"XDG_CONFIG_HOME", (dir_.path() / "config").string()},
        {"XDG_DATA_HOME", (dir_.path() / "data").string()}};
    testing::Child child(args, env, dir_.path() / ("out" + std::to_string(runs_++) + ".txt"));
    child.write_input(input);
    child.close_input();
    return child.wait(120s);
  }
  std::filesystem::path data_dir() const { return dir_.path() / "lotus-data"; }
  std::filesystem::path memory_dir() const { return data_dir() / "modules" / "memory"; }
  void configure(const std::string& memory_config) {
    testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml",
                        "modules:\n  memory: " + memory_config + "\n");
  }
  // The ids in `lotus memory search --json` order.
  static std::vector<std::string> contents(const testing::ProcessResult& result) {
    std::vector<std::string> out;
    Json doc = Json::parse(result.output.substr(result.output.find('{')), nullptr, false);
    if (doc.is_discarded()) return {"(not JSON) " + result.output};
    for (const Json& hit : doc["results"]) out.push_back(hit["content"].get<std::string>());
    return out;
  }
  std::string top(const std::string& query) {
    auto hits = contents(run({"memory", "search", query, "--json", "-n", "3"}));
    return hits.empty() ? "(nothing)" : hits.front();
  }

  void add_corpus(const std::string& importance) {
    for (const char* text : {
             "The deployment script scripts/deploy.sh restarts the web server",
             "Alice prefers dark mode in every editor",
             "Grandmother's apple pie recipe uses cinnamon and nutmeg",
             "Our VPN gateway is called zanzibar and lives in Frankfurt",
         }) {
      std::vector<std::string> args = {"memory", "add", text};
      if (!importance.empty()) args.insert(args.end(), {"--importance", importance});
      auto added = run(args);
      ASSERT_EQ(added.exit_code, 0) << added.output;
      ASSERT_THAT(added.output, HasSubstr("remembered "));
    }
  }

  testing::TempDir dir_;
  int runs_ = 0;
};

TEST_F(MemoryCliTest, HelpSaysTheCommandsOpenTheDataFolderDirectly) {
  auto help = run({"memory", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (auto text : {"add", "search", "forget", "stats", "reindex", "directly", "modules/memory"}) {
    EXPECT_THAT(help.output, HasSubstr(text));
  }
  EXPECT_NE(run({"memory"}).exit_code, 0) << "a subcommand is required";
}

TEST_F(MemoryCliTest, AddedMemoriesAreFoundByMeaningAndByKeywordAfterRestarts) {
  add_corpus("0.3");  // short-term
  add_corpus("0.9");  // long-term, in the vector index
  EXPECT_TRUE(std::filesystem::exists(memory_dir() / "memory.db"));

  EXPECT_EQ(top("how do we deploy, and restart the server?"),
            "The deployment script scripts/deploy.sh restarts the web server");
  EXPECT_EQ(top("zanzibar"), "Our VPN gateway is called zanzibar and lives in Frankfurt");
  EXPECT_EQ(top("cinnamon pies"), "Grandmother's apple pie recipe uses cinnamon and nutmeg");

  auto table = run({"memory", "search", "editor", "dark", "mode"});
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("RANK  SCORE  TYPE"));
  EXPECT_THAT(table.output, HasSubstr("1     "));
  EXPECT_THAT(table.output, HasSubstr("semantic"));
  EXPECT_THAT(table.output, HasSubstr("Alice prefers dark mode in every editor"));

  auto json = run({"memory", "search", "Frankfurt", "--json", "--type", "semantic"});
  Json doc = Json::parse(json.output);
  ASSERT_FALSE(doc["results"].empty());
  EXPECT_EQ(doc["results"][0]["rank"], 1);
  EXPECT_TRUE(doc["results"][0]["keyword_match"].get<bool>());
  EXPECT_GT(doc["results"][0]["score"].get<double>(), 0.0);
  EXPECT_TRUE(EventId::parse(doc["results"][0]["id"].get<std::string>()).ok());
  EXPECT_TRUE(
      contents(run({"memory", "search", "Frankfurt", "--json", "--type", "procedural"})).empty());

  auto stats = run({"memory", "stats", "--json"});
  Json s = Json::parse(stats.output);
  EXPECT_EQ(s["tiers"]["long_term"], 4);
  EXPECT_EQ(s["tiers"]["short_term"], 4);
  EXPECT_EQ(s["index"]["vectors"], 4);
  EXPECT_EQ(s["embedder"]["name"], "hashing-v1");
  EXPECT_EQ(s["embedder"]["dimension"], 384);
  auto text = run({"memory", "stats"});
  EXPECT_THAT(text.output, HasSubstr("hashing-v1 (dimension 384)"));
  EXPECT_THAT(text.output, HasSubstr("long_term    4"));
  EXPECT_THAT(text.output, HasSubstr("total        8"));
}

TEST_F(MemoryCliTest, BulkImportFromAFileAndStandardInputShowsProgress) {
  const auto file = dir_.path() / "notes.txt";
  {
    std::ofstream out(file);
    for (int i = 0; i < 600; ++i) out << "note number " << i << " about topic" << i % 7 << "\n\n";
  }
  auto imported = run({"memory", "add", "--file", file.string(), "--type", "episodic"});
  EXPECT_EQ(imported.exit_code, 0) << imported.output;
  // Not a terminal: plain lines at each tenth, no bar redrawn in place.
  EXPECT_THAT(imported.output, HasSubstr("importing memories: 600/600 (100%)"));
  EXPECT_THAT(imported.output, HasSubstr("importing memories: 256/600 (40%)"));
  EXPECT_THAT(imported.output, Not(HasSubstr("\r")));
  EXPECT_THAT(imported.output, HasSubstr("remembered 600 memories from " + file.string()));

  auto piped = run({"memory", "add"}, "first piped line\nsecond piped line\n");
  EXPECT_EQ(piped.exit_code, 0) << piped.output;
  EXPECT_THAT(piped.output, HasSubstr("remembered 2 memories from standard input"));

  EXPECT_EQ(top("note number 421"), "note number 421 about topic1");
  EXPECT_EQ(top("second piped"), "second piped line");
  Json s = Json::parse(run({"memory", "stats", "--json"}).output);
  EXPECT_EQ(s["tiers"]["short_term"].get<int>() + s["tiers"].value("long_term", 0), 602);

  auto missing = run({"memory", "add", "--file", (dir_.path() / "nope.txt").string()});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("cannot read"));
}

TEST_F(MemoryCliTest, ForgetAsksFirstUnlessTold) {
  add_corpus("0.9");
  auto found = run({"memory", "search", "zanzibar", "--json", "-n", "1"});
  const std::string id = Json::parse(found.output)["results"][0]["id"];

  auto declined = run({"memory", "forget", id}, "n\n");
  EXPECT_EQ(declined.exit_code, 1);
  EXPECT_THAT(declined.output, HasSubstr("zanzibar"));
  EXPECT_THAT(declined.output, HasSubstr("Forget 1 memory for good? [y/N]"));
  EXPECT_THAT(declined.output, HasSubstr("nothing forgotten"));
  auto no_answer = run({"memory", "forget", id});
  EXPECT_EQ(no_answer.exit_code, 1) << "end of input is no";

  auto confirmed = run({"memory", "forget", id}, "y\n");
  EXPECT_EQ(confirmed.exit_code, 0) << confirmed.output;
  EXPECT_THAT(confirmed.output, HasSubstr("forgot 1 memory"));
  EXPECT_NE(top("zanzibar"), "Our VPN gateway is called zanzibar and lives in Frankfurt");
  EXPECT_EQ(run({"memory", "forget", id, "--yes"}).exit_code, 1) << "gone already";

  auto by_filter = run({"memory", "forget", "--module", "cli", "--older-than", "0s", "--yes"});
  EXPECT_EQ(by_filter.exit_code, 0) << by_filter.output;
  EXPECT_THAT(by_filter.output, HasSubstr("forgot 3 memories"));
  EXPECT_EQ(top("cinnamon"), "(nothing)");

  auto nothing = run({"memory", "forget"});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_THAT(nothing.output, HasSubstr("give the ids to forget or a filter"));
  auto bad_age = run({"memory", "forget", "--older-than", "soon"});
  EXPECT_EQ(bad_age.exit_code, 2);
  EXPECT_THAT(bad_age.output, HasSubstr("--older-than"));
}

TEST_F(MemoryCliTest, ACorruptIndexFileIsRebuiltOnTheNextOpen) {
  add_corpus("0.9");
  ASSERT_TRUE(std::filesystem::exists(memory_dir() / "index.hnsw"));
  {
    std::fstream index(memory_dir() / "index.hnsw",
                       std::ios::in | std::ios::out | std::ios::binary);
    index.seekp(64);
    index << "this is not what hnswlib wrote";
  }
  auto search = run({"memory", "search", "zanzibar"});
  EXPECT_EQ(search.exit_code, 0) << search.output;
  EXPECT_THAT(search.output, HasSubstr("rebuilding memory index: 4/4 (100%)"));
  EXPECT_THAT(search.output, HasSubstr("the index was rebuilt from"));
  EXPECT_THAT(search.output, HasSubstr("Our VPN gateway is called zanzibar"));
  auto again = run({"memory", "search", "zanzibar"});
  EXPECT_THAT(again.output, Not(HasSubstr("rebuilt"))) << "the rebuilt file was saved";

  std::filesystem::remove(memory_dir() / "index.hnsw");
  EXPECT_THAT(run({"memory", "search", "zanzibar"}).output, HasSubstr("the index was rebuilt"));
}

TEST_F(MemoryCliTest, AnotherEmbedderIsRefusedUntilReindexed) {
  add_corpus("0.9");
  configure("{embedder: {type: hashing, dimensions: 128}}");
  auto refused = run({"memory", "search", "zanzibar"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("run `lotus memory reindex`"));

  auto reindexed = run({"memory", "reindex"});
  EXPECT_EQ(reindexed.exit_code, 0) << reindexed.output;
  EXPECT_THAT(reindexed.output, HasSubstr("re-embedding memories: 4/4 (100%)"));
  EXPECT_THAT(reindexed.output, HasSubstr("rebuilding memory index: 4/4 (100%)"));
  EXPECT_THAT(reindexed.output, HasSubstr("reindexed: 4 long-term vectors"));
  EXPECT_THAT(reindexed.output, HasSubstr("dimension 128"));
  EXPECT_EQ(top("zanzibar"), "Our VPN gateway is called zanzibar and lives in Frankfurt");
  EXPECT_EQ(Json::parse(run({"memory", "stats", "--json"}).output)["embedder"]["dimension"], 128);

  // The same embedder: the index is rebuilt, nothing re-embedded.
  auto rebuilt = run({"memory", "reindex"});
  EXPECT_EQ(rebuilt.exit_code, 0) << rebuilt.output;
  EXPECT_THAT(rebuilt.output, Not(HasSubstr("re-embedding")));
  EXPECT_THAT(rebuilt.output, HasSubstr("rebuilding memory index"));

  configure("{embedder: {type: word2vec}}");
  auto bad = run({"memory", "stats"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("modules.memory.embedder.type"));
}

TEST_F(MemoryCliTest, AProviderEmbedderFromConfigEmbedsThroughItsServer) {
  testing::HttpReplayServer ollama;
  configure(
      "{embedder: {type: ollama, model: all-minilm, dimensions: 3, max_attempts: 1, base_url: " +
      ollama.base_url() + "}}");
  auto reply = [](const std::string& vectors) {
    return testing::ReplayResponse::json(
        200, R"({"model":"all-minilm","embeddings":)" + vectors +
                 R"(,"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8})");
  };
  ollama.enqueue(reply("[[1,0,0]]"));
  auto added = run({"memory", "add", "red apples", "--importance", "0.9"});
  EXPECT_EQ(added.exit_code, 0) << added.output;
  ollama.enqueue(reply("[[0.9,0.1,0]]"));
  auto found = run({"memory", "search", "something fruity", "--json"});
  EXPECT_EQ(contents(found), std::vector<std::string>{"red apples"});
  auto requests = ollama.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target, "/api/embed");
  EXPECT_EQ(Json::parse(requests[1].body)["input"], Json::array({"something fruity"}));
  EXPECT_EQ(Json::parse(run({"memory", "stats", "--json"}).output)["embedder"]["name"],
            "ollama:all-minilm");

  ollama.enqueue(
      testing::ReplayResponse::json(404, R"({"error":"model \"all-minilm\" not found"})"));
  auto failed = run({"memory", "add", "green pears"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.output, HasSubstr("embedder ollama: not found"));
  EXPECT_THAT(failed.output, HasSubstr("model \"all-minilm\" not found"));
}

}  // namespace
}  // namespace lotus
