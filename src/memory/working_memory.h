// WorkingMemory: L1, what LOTUS has "in mind" right now.
//
// A bounded in-process LRU of recent records with their vectors, each entry
// living `ttl` seconds from its last use. Searched exhaustively (it is small),
// so recall finds what was just said without touching disk. Not durable: every
// record in it is also in SQLite. Not thread-safe; its owner locks.
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lotus/memory.h"

namespace lotus::memory {

class WorkingMemory {
 public:
  struct Entry {
    MemoryRecord record;
    std::vector<float> vector;
    double last_used = 0.0;
  };

  WorkingMemory(size_t capacity, double ttl_seconds) : capacity_(capacity), ttl_(ttl_seconds) {}

  // Inserts or refreshes `record`, evicting the least recently used entry
  // when full.
  void put(MemoryRecord record, std::vector<float> vector, double now);
  // Marks the entry used; nullptr when absent or expired.
  const Entry* touch(const std::string& id, double now);
  bool contains(const std::string& id, double now) const;
  void erase(const std::string& id);
  // Drops entries unused for longer than the TTL; returns how many.
  size_t expire(double now);
  // The `k` live entries most similar to `query` (cosine), best first.
  std::vector<std::pair<float, const Entry*>> search(const std::vector<float>& query, size_t k,
                                                     double now) const;
  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  bool expired(const Entry& e, double now) const { return now - e.last_used > ttl_; }

  size_t capacity_;
  double ttl_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_id_;
};

}  // namespace lotus::memory
