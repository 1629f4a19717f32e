#include "memory/working_memory.h"

#include <algorithm>

#include "memory/hashing_embedder.h"

namespace lotus::memory {

void WorkingMemory::put(MemoryRecord record, std::vector<float> vector, double now) {
  if (capacity_ == 0) return;
  erase(record.id);
  entries_.push_front(Entry{std::move(record), std::move(vector), now});
  by_id_[entries_.front().record.id] = entries_.begin();
  while (entries_.size() > capacity_) {
    by_id_.erase(entries_.back().record.id);
    entries_.pop_back();
  }
}

const WorkingMemory::Entry* WorkingMemory::touch(const std::string& id, double now) {
  auto it = by_id_.find(id);
  if (it == by_id_.end() || expired(*it->second, now)) return nullptr;
  it->second->last_used = now;
  entries_.splice(entries_.begin(), entries_, it->second);
  return &*it->second;
}

bool WorkingMemory::contains(const std::string& id, double now) const {
  auto it = by_id_.find(id);
  return it != by_id_.end() && !expired(*it->second, now);
}

void WorkingMemory::erase(const std::string& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  entries_.erase(it->second);
  by_id_.erase(it);
}

size_t WorkingMemory::expire(double now) {
  size_t n = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (expired(*it, now)) {
      by_id_.erase(it->record.id);
      it = entries_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

std::vector<std::pair<float, const WorkingMemory::Entry*>> WorkingMemory::search(
    const std::vector<float>& query, size_t k, double now) const {
  std::vector<std::pair<float, const Entry*>> hits;
  for (const Entry& e : entries_) {
    if (expired(e, now) || e.vector.size() != query.size()) continue;
    hits.emplace_back(dot(query.data(), e.vector.data(), query.size()), &e);
  }
  const size_t keep = std::min(k, hits.size());
  std::partial_sort(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(keep), hits.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  hits.resize(keep);
  return hits;
}

}  // namespace lotus::memory
