// Provider embedders against a local server replaying each API's documented
// reply shapes (OpenAI's {"object":"list","data":[{"embedding",...,"index"}]}
// and Ollama's {"model","embeddings":[[...]]}): request shape, batching,
// order, normalization, the dimension probe, errors and keys kept out of
// them, the memory config, and a store refusing vectors of another embedder.
#include "memory/provider_embedder.h"

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "llm/provider_test_support.h"
#include "lotus/strings.h"
#include "memory/embedded_memory.h"
#include "memory/hashing_embedder.h"
#include "memory/memory_config.h"
#include "testing/temp_dir.h"

namespace lotus::memory {
namespace {

using ::testing::HasSubstr;
using testing::HttpReplayServer;
using ::testing::Not;
using testing::ReplayResponse;

constexpr const char* kKey = "sk-test-0123456789abcdefghijklmnop";

// A documented OpenAI reply for `vectors`, listed in `order` (indexes).
std::string openai_reply(const std::vector<std::vector<double>>& vectors,
                         std::vector<size_t> order = {}) {
  if (order.empty()) {
    for (size_t i = 0; i < vectors.size(); ++i) order.push_back(i);
  }
  Json data = Json::array();
  for (size_t i : order) {
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vectors[i]}});
  }
  return Json{{"object", "list"},
              {"data", data},
              {"model", "text-embedding-3-small"},
              {"usage", {{"prompt_tokens", 8}, {"total_tokens", 8}}}}
      .dump();
}

std::string ollama_reply(const std::vector<std::vector<double>>& vectors) {
  return Json{{"model", "all-minilm"},
              {"embeddings", vectors},
              {"total_duration", 14143917},
              {"load_duration", 1019500},
              {"prompt_eval_count", 8}}
      .dump();
}

class ProviderEmbedderTest : public ::testing::Test {
 protected:
  ProviderEmbedderOptions options(ProviderEmbedderOptions::Api api,
                                  std::map<std::string, std::string> env = {}) {
    auto o = ProviderEmbedderOptions::defaults(api);
    llm::test::use_server(o.http, server_, sleeps_, std::move(env));
    return o;
  }
  std::unique_ptr<ProviderEmbedder> create(ProviderEmbedderOptions o) {
    auto e = ProviderEmbedder::create(std::move(o));
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }

  HttpReplayServer server_;
  llm::test::SleepLog sleeps_;
};

TEST_F(ProviderEmbedderTest, OpenAiBatchesInOrderAndNormalizes) {
  auto o = options(ProviderEmbedderOptions::Api::kOpenAi, {{"OPENAI_API_KEY", kKey}});
  o.http.base_url = server_.base_url() + "/v1";
  o.dimensions = 2;
  o.batch_size = 2;
  auto embedder = create(o);
  ASSERT_NE(embedder, nullptr);
  EXPECT_EQ(server_.requests().size(), 0u) << "a configured dimension needs no probe";
  EXPECT_EQ(embedder->name(), "openai:text-embedding-3-small");
  EXPECT_EQ(embedder->dimension(), 2u);

  // The first batch comes back out of order: `index` says where each goes.
  server_.enqueue(ReplayResponse::json(200, openai_reply({{3, 4}, {0, 2}}, {1, 0})));
  server_.enqueue(ReplayResponse::json(200, openai_reply({{1, 0}})));
  auto vectors = embedder->embed_batch({"first", "second", "third"});
  ASSERT_TRUE(vectors.ok()) << vectors.status();
  ASSERT_EQ(vectors->size(), 3u);
  EXPECT_NEAR((*vectors)[0][0], 0.6f, 1e-6f);
  EXPECT_NEAR((*vectors)[0][1], 0.8f, 1e-6f);
  EXPECT_NEAR((*vectors)[1][1], 1.0f, 1e-6f);
  EXPECT_NEAR((*vectors)[2][0], 1.0f, 1e-6f);

  auto sent = server_.requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].method, "POST");
  EXPECT_EQ(sent[0].target, "/v1/embeddings");
  EXPECT_EQ(sent[0].header("authorization"), cat("Bearer ", kKey));
  Json body = Json::parse(sent[0].body);
  EXPECT_EQ(body["model"], "text-embedding-3-small");
  EXPECT_EQ(body["input"], Json::array({"first", "second"}));
  EXPECT_EQ(body["encoding_format"], "float");
  EXPECT_EQ(body["dimensions"], 2);
  EXPECT_EQ(Json::parse(sent[1].body)["input"], Json::array({"third"}));
}

TEST_F(ProviderEmbedderTest, OllamaUsesApiEmbedWithoutAKeyAndProbesTheDimension) {
  auto o = options(ProviderEmbedderOptions::Api::kOllama);
  o.model = "all-minilm";
  server_.enqueue(ReplayResponse::json(200, ollama_reply({{0, 0, 5}})));
  auto embedder = create(o);
  ASSERT_NE(embedder, nullptr);
  EXPECT_EQ(embedder->dimension(), 3u) << "learned from the probe";
  EXPECT_EQ(embedder->name(), "ollama:all-minilm");

  server_.enqueue(ReplayResponse::json(200, ollama_reply({{2, 0, 0}, {0, 0, 0}})));
  auto vectors = embedder->embed_batch({"alpha", ""});
  ASSERT_TRUE(vectors.ok()) << vectors.status();
  EXPECT_EQ((*vectors)[0], (std::vector<float>{1, 0, 0}));
  EXPECT_EQ((*vectors)[1], (std::vector<float>{0, 0, 0})) << "a zero vector stays zero";

  auto sent = server_.requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].target, "/api/embed");
  EXPECT_EQ(sent[1].header("authorization"), "");
  Json body = Json::parse(sent[1].body);
  EXPECT_EQ(body["model"], "all-minilm");
  EXPECT_EQ(body["input"], Json::array({"alpha", " "})) << "empty text is sent as a space";
  EXPECT_FALSE(body.contains("dimensions"));
}

TEST_F(ProviderEmbedderTest, ErrorsSayWhatToFixAndNeverShowTheKey) {
  // No key at all.
  auto missing = ProviderEmbedder::create(options(ProviderEmbedderOptions::Api::kOpenAi));
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(message_of(missing.status())), HasSubstr("OPENAI_API_KEY"));

  auto o = options(ProviderEmbedderOptions::Api::kOpenAi, {{"OPENAI_API_KEY", kKey}});
  o.dimensions = 2;
  auto embedder = create(o);
  ASSERT_NE(embedder, nullptr);

  // A rejected key names the variable; the server's echo of it is masked.
  server_.enqueue(ReplayResponse::json(
      401, cat(R"({"error":{"message":"Incorrect API key provided: )", kKey,
               R"(","type":"invalid_request_error","code":"invalid_api_key"}})")));
  auto rejected = embedder->embed("x");
  ASSERT_EQ(rejected.status().code(), absl::StatusCode::kUnauthenticated);
  std::string text(message_of(rejected.status()));
  EXPECT_THAT(text, HasSubstr("check OPENAI_API_KEY"));
  EXPECT_THAT(text, Not(HasSubstr(kKey)));
  EXPECT_THAT(text, Not(HasSubstr("0123456789abcdef")));

  // 5xx is retried.
  server_.enqueue(ReplayResponse::json(503, R"({"error":{"message":"overloaded"}})"));
  server_.enqueue(ReplayResponse::json(200, openai_reply({{1, 1}})));
  EXPECT_TRUE(embedder->embed("y").ok());
  EXPECT_EQ(sleeps_.taken().size(), 1u);

  // An unknown model.
  server_.enqueue(ReplayResponse::json(
      404,
      R"({"error":{"message":"The model `nope` does not exist","type":"invalid_request_error"}})"));
  auto not_found = embedder->embed("z");
  EXPECT_EQ(not_found.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(message_of(not_found.status())), HasSubstr("does not exist"));

  // Replies that do not fit the request.
  server_.enqueue(ReplayResponse::json(200, openai_reply({{1, 0, 0}})));
  auto wrong_size = embedder->embed("z");
  EXPECT_EQ(wrong_size.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(message_of(wrong_size.status())),
              HasSubstr("returned vectors of 3 numbers, expected 2"));
  server_.enqueue(ReplayResponse::json(200, openai_reply({{1, 0}})));
  auto too_few = embedder->embed_batch({"a", "b"});
  EXPECT_THAT(std::string(message_of(too_few.status())),
              HasSubstr("returned 1 embeddings for 2 texts"));
  server_.enqueue(ReplayResponse::json(200, R"({"object":"list","data":[{"embedding":"no"}]})"));
  EXPECT_THAT(std::string(message_of(embedder->embed("a").status())), HasSubstr("malformed reply"));
  server_.enqueue(ReplayResponse::json(200, "{not json"));
  EXPECT_THAT(std::string(message_of(embedder->embed("a").status())), HasSubstr("malformed JSON"));
}

TEST_F(ProviderEmbedderTest, AnUnreachableServerFailsCreationClearly) {
  auto o = options(ProviderEmbedderOptions::Api::kOllama);
  o.http.base_url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.http.retry.max_attempts = 1;
  auto e = ProviderEmbedder::create(o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(message_of(e.status())), HasSubstr("embedder ollama"));
  EXPECT_THAT(std::string(message_of(e.status())), HasSubstr("setting `dimensions` skips this"));
}

TEST(MemoryConfigTest, ReadsEmbedderAndStoreSettings) {
  auto hashing = make_embedder(Json());
  ASSERT_TRUE(hashing.ok());
  EXPECT_EQ((*hashing)->name(), "hashing-v1");
  EXPECT_EQ((*hashing)->dimension(), 384u);
  auto small = make_embedder(Json{{"type", "hashing"}, {"dimensions", 64}});
  ASSERT_TRUE(small.ok());
  EXPECT_EQ((*small)->dimension(), 64u);

  auto bad_type = make_embedder(Json{{"type", "word2vec"}});
  EXPECT_THAT(std::string(message_of(bad_type.status())),
              HasSubstr("modules.memory.embedder.type: \"word2vec\" is not an embedder"));
  auto bad_key = make_embedder(Json{{"type", "ollama"}, {"modle", "x"}});
  EXPECT_THAT(std::string(message_of(bad_key.status())),
              HasSubstr("modules.memory.embedder.modle: unknown key"));
  auto bad_dims = make_embedder(Json{{"type", "ollama"}, {"dimensions", "many"}});
  EXPECT_THAT(std::string(message_of(bad_dims.status())),
              HasSubstr("modules.memory.embedder.dimensions: must be a number"));

  HttpReplayServer server;
  auto openai = make_embedder(Json{{"type", "openai"},
                                   {"base_url", server.base_url()},
                                   {"model", "bge-small"},
                                   {"dimensions", 384}});
  ASSERT_TRUE(openai.ok()) << openai.status() << ": a compatible server at a base_url needs no key";
  EXPECT_EQ((*openai)->name(), "openai:bge-small");
  EXPECT_EQ((*openai)->dimension(), 384u);

  auto options = embedded_memory_options(
      Json{{"data_dir", "/tmp/x"}, {"hnsw_ef_search", 64}, {"working_capacity", 8}}, "/default");
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->dir, "/tmp/x");
  EXPECT_EQ(options->index.ef_search, 64u);
  EXPECT_EQ(options->working_capacity, 8u);
  EXPECT_EQ(embedded_memory_options(Json::object(), "/default")->dir, "/default");
  EXPECT_THAT(std::string(message_of(embedded_memory_options(Json{{"hnsw_m", -1}}, "/d").status())),
              HasSubstr("modules.memory.hnsw_m: must be a whole number >= 0"));
}

TEST_F(ProviderEmbedderTest, AStoreMadeByAProviderRefusesAnotherEmbedderUntilReindexed) {
  testing::TempDir dir;
  auto o = options(ProviderEmbedderOptions::Api::kOllama);
  o.model = "all-minilm";
  o.dimensions = 3;
  EmbeddedMemoryOptions store_options;
  store_options.dir = dir.path();
  store_options.embedder = std::shared_ptr<Embedder>(create(o));
  {
    auto store = EmbeddedMemory::open(store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    server_.enqueue(ReplayResponse::json(200, ollama_reply({{1, 0, 0}, {0, 1, 0}})));
    std::vector<MemoryInput> inputs(2);
    inputs[0].content = "red apples";
    inputs[1].content = "green pears";
    for (auto& input : inputs) input.importance = 0.9;
    auto stored = (*store)->remember_all(std::move(inputs));
    ASSERT_TRUE(stored.ok()) << stored.status();
    server_.enqueue(ReplayResponse::json(200, ollama_reply({{0, 1, 0}})));
    auto hits = (*store)->recall("something pear-like", 1, {});
    ASSERT_TRUE(hits.ok()) << hits.status();
    EXPECT_EQ(hits->front().record.content, "green pears");
  }
  EXPECT_EQ(Json::parse(server_.requests()[0].body)["input"],
            Json::array({"red apples", "green pears"}))
      << "a bulk store is one batched request";

  auto hashing = store_options;
  hashing.embedder = std::make_shared<HashingEmbedder>();
  auto refused = EmbeddedMemory::open(hashing);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  std::string text(message_of(refused.status()));
  EXPECT_THAT(text, HasSubstr("\"ollama:all-minilm\" (dimension 3)"));
  EXPECT_THAT(text, HasSubstr("run `lotus memory reindex`"));

  // Reindexing with the same embedder only rebuilds the index: no requests.
  const size_t requests = server_.requests().size();
  auto same = store_options;
  same.reindex = true;
  {
    auto store = EmbeddedMemory::open(same);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->index_rebuild_reason(), "reindex requested");
  }
  EXPECT_EQ(server_.requests().size(), requests);

  // With the hashing embedder it re-embeds everything, with progress.
  hashing.reindex = true;
  std::vector<size_t> progress;
  hashing.progress = [&](std::string_view what, size_t done, size_t) {
    if (what == "re-embedding memories") progress.push_back(done);
  };
  auto store = EmbeddedMemory::open(hashing);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(progress, (std::vector<size_t>{0, 2}));
  auto hits = (*store)->recall("apples", 1, {});
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->front().record.content, "red apples");
  EXPECT_EQ((*(*store)->stats())["embedder"]["name"], "hashing-v1");
}

}  // namespace
}  // namespace lotus::memory
