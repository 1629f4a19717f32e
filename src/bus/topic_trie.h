// TopicTrie<V>: subscription patterns indexed by segment, so matching a
// channel costs O(depth of the channel), not O(number of subscriptions).
//
// A node holds its literal children (hashed once per channel segment, the hash
// reused at every node), one child for "*" and one for "**"; runs of "**" are
// collapsed on insert. Not thread-safe: the bus guards it with a shared_mutex,
// so match() is const and keeps its scratch state on the stack, allocating
// nothing unless a pattern has two or more "**".
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lotus/channel.h"

namespace lotus {

template <typename V>
class TopicTrie {
 public:
  // Never 0, never reused within one trie.
  using Handle = uint64_t;

  TopicTrie() : root_(std::make_unique<Node>()) {}
  TopicTrie(const TopicTrie&) = delete;
  TopicTrie& operator=(const TopicTrie&) = delete;
  // A moved-from trie is empty and still usable.
  TopicTrie(TopicTrie&& other) noexcept { *this = std::move(other); }
  TopicTrie& operator=(TopicTrie&& other) noexcept {
    if (this == &other) return *this;
    root_ = std::move(other.root_);
    handles_ = std::move(other.handles_);
    other.handles_.clear();
    next_handle_ = other.next_handle_;
    node_count_ = std::exchange(other.node_count_, 0);
    return *this;
  }

  // `pattern` must already have passed validate_pattern.
  Handle insert(std::string_view pattern, V value);

  // Returns false if `handle` is unknown (never issued, or already removed).
  bool remove(Handle handle);

  // Calls visit(const V&) exactly once per subscription whose pattern matches
  // `channel`, in no particular order. `visit` must not modify the trie.
  template <class F>
  void match(std::string_view channel, F&& visit) const;

  size_t size() const { return handles_.size(); }
  bool empty() const { return handles_.empty(); }
  // Nodes below the root; 0 once every subscription is removed (pruning).
  size_t node_count() const { return node_count_; }

 private:
  struct Node;

  // Literal children of a node, owned. A lone child (the common case deep in
  // the trie) is held directly, which saves match() a cache miss; more become
  // an open-addressing table with linear probing and backward-shift deletion,
  // whose slots carry the full hash so a probe reads only the slot array until
  // the likely hit.
  class ChildTable {
   public:
    ChildTable() = default;  // NOLINT(cppcoreguidelines-pro-type-member-init): only_ is set
    ChildTable(const ChildTable&) = delete;
    ChildTable& operator=(const ChildTable&) = delete;
    ~ChildTable() {
      if (mask_ == 0) {
        delete only_;
        return;
      }
      for (size_t i = 0; i <= mask_; ++i) delete slots_[i].node;
      delete[] slots_;
    }

    bool empty() const { return size_ == 0; }

    // Starts loading what find(_, hash) will read, so the miss overlaps with
    // the "*" and "**" branches walked before it.
    void prefetch(size_t hash) const {
      if (mask_ != 0) {
        __builtin_prefetch(&slots_[hash & mask_]);
      } else if (only_ != nullptr) {
        __builtin_prefetch(only_);
      }
    }

    [[gnu::always_inline]] Node* find(std::string_view key, size_t hash) const {
      if (mask_ == 0) {
        return only_ != nullptr && same_segment(only_->key, key) ? only_ : nullptr;
      }
      for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
        const Slot& slot = slots_[i];
        if (slot.node == nullptr) return nullptr;
        if (slot.hash == hash && same_segment(slot.node->key, key)) return slot.node;
      }
    }

    Node* add(std::unique_ptr<Node> node) {
      if (mask_ == 0 && size_ == 0) {
        only_ = node.release();
        size_ = 1;
        return only_;
      }
      if (mask_ == 0) {
        Slot* table = new Slot[4]();
        Node* first = only_;
        slots_ = table;
        mask_ = 3;
        place(first);
      } else if ((size_t{size_} + 1) * 4 > (size_t{mask_} + 1) * 3) {
        grow();
      }
      Node* raw = node.release();
      place(raw);
      ++size_;
      return raw;
    }

    // Destroys `node`, which must be a child.
    void erase(const Node* node) {
      --size_;
      if (mask_ == 0) {
        delete only_;
        only_ = nullptr;
        return;
      }
      size_t i = node->hash & mask_;
      while (slots_[i].node != node) i = (i + 1) & mask_;
      delete slots_[i].node;
      slots_[i] = Slot{};
      if (size_ == 0) {
        delete[] slots_;
        only_ = nullptr;
        mask_ = 0;
        return;
      }
      // Shift later members of the probe run back so lookups never stop early.
      for (size_t j = (i + 1) & mask_; slots_[j].node != nullptr; j = (j + 1) & mask_) {
        const size_t home = slots_[j].hash & mask_;
        const bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        slots_[i] = slots_[j];
        slots_[j] = Slot{};
        i = j;
      }
    }

   private:
    struct Slot {
      size_t hash;
      Node* node;
    };

    void place(Node* node) {
      size_t i = node->hash & mask_;
      while (slots_[i].node != nullptr) i = (i + 1) & mask_;
      slots_[i] = Slot{node->hash, node};
    }

    void grow() {
      const size_t old_capacity = size_t{mask_} + 1;
      Slot* old = slots_;
      slots_ = new Slot[old_capacity * 2]();
      mask_ = static_cast<uint32_t>(old_capacity * 2 - 1);
      for (size_t i = 0; i < old_capacity; ++i) {
        if (old[i].node != nullptr) place(old[i].node);
      }
      delete[] old;
    }

    // mask_ == 0: at most one child, in only_; otherwise a table of mask_ + 1
    // slots. 32-bit counters keep this at 16 bytes, inside the node's first
    // cache line with the other fields match() reads.
    union {
      Node* only_ = nullptr;
      Slot* slots_;
    };
    uint32_t mask_ = 0;
    uint32_t size_ = 0;
  };

  enum class Edge : uint8_t { kRoot, kLiteral, kStar, kDoubleStar };

  // The fields match() reads at every node (key, "**", "*", children) share
  // the first cache line; the rest is only touched at the end of a channel or
  // by insert/remove.
  struct alignas(64) Node {
    std::string key;  // the segment, for kLiteral
    std::unique_ptr<Node> double_star;
    std::unique_ptr<Node> star;
    ChildTable children;

    std::vector<std::pair<Handle, V>> subscribers;
    Node* parent = nullptr;
    size_t hash = 0;  // of `key`, for kLiteral
    // Number of "**" edges from the root down to and including this node. Only
    // from two on can one channel reach a node along more than one path.
    uint32_t double_stars = 0;
    Edge edge = Edge::kRoot;

    bool prunable() const {
      return subscribers.empty() && children.empty() && star == nullptr && double_star == nullptr;
    }
  };

  // Segment of the channel being matched; trivially default-constructible so
  // the per-match array below costs nothing to set up.
  struct Segment {
    const char* data;
    size_t size;
    size_t hash;

    std::string_view text() const { return std::string_view(data, size); }
  };

  struct Segments {
    const Segment* data;
    size_t size;
  };

  // Positions already expanded below a "**" node that has two or more "**"
  // on its path: for such a node every visit explores [lo, size], so a later
  // visit from position i only needs [i, lo). This bounds the work of
  // patterns like "**.a.**" and is what makes each subscription visited once.
  // Untouched (and allocation-free) unless such a pattern is reached.
  class Expanded {
   public:
    Expanded() {}  // user-provided, so the inline entries stay uninitialized

    // Returns the first position not yet expanded for `node`, recording that
    // everything from `from` on is now covered.
    size_t claim(const Node* node, size_t from) {
      for (size_t k = 0; k < count_; ++k) {
        Entry& e = at(k);
        if (e.node == node) {
          const size_t until = e.lo;
          if (from < e.lo) e.lo = from;
          return until;
        }
      }
      if (count_ < kInline) {
        inline_[count_] = Entry{node, from};
      } else {
        overflow_.push_back(Entry{node, from});
      }
      ++count_;
      return std::string_view::npos;
    }

   private:
    struct Entry {
      const Node* node;
      size_t lo;
    };
    static constexpr size_t kInline = 8;

    Entry& at(size_t k) { return k < kInline ? inline_[k] : overflow_[k - kInline]; }

    Entry inline_[kInline];
    size_t count_ = 0;
    std::vector<Entry> overflow_;
  };

  template <class F>
  struct MatchState {
    MatchState(Segments s, F& v) : segments(s), visit(v) {}

    Segments segments;
    F& visit;
    Expanded expanded;
  };

  // Segments are short, so these run inline, a word at a time, instead of
  // calling std::_Hash_bytes and memcmp (which were a third of match()).
  // Unseeded: the table's keys come from subscriptions, not from publishers,
  // so a publisher cannot lengthen probe runs.
  // Callers only load whole words that lie inside the segment, but GCC 12 at
  // -O3 cannot always prove it once a short literal channel is inlined and
  // reports a bogus -Warray-bounds.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
  static uint64_t load_word(const char* p) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    return word;
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  // The last n bytes (n < 8) of a segment as one word, using two overlapping
  // loads instead of a byte loop. Overlap is harmless: both sides of a compare,
  // and every hash input, have the same length.
  static uint64_t load_tail(const char* p, size_t n) {
    if (n >= 4) {
      uint32_t lo, hi;
      std::memcpy(&lo, p, 4);
      std::memcpy(&hi, p + n - 4, 4);
      return lo | (uint64_t{hi} << 32);
    }
    if (n >= 2) {
      uint16_t lo, hi;
      std::memcpy(&lo, p, 2);
      std::memcpy(&hi, p + n - 2, 2);
      return lo | (uint64_t{hi} << 16);
    }
    return n == 1 ? static_cast<unsigned char>(*p) : 0;
  }

  static size_t hash_segment(std::string_view segment) {
    constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;
    const char* p = segment.data();
    const size_t n = segment.size();
    uint64_t h = (n + 1) * kMul;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
      h = (h ^ load_word(p + k)) * kMul;
      h ^= h >> 29;
    }
    if (k < n) h = (h ^ load_tail(p + k, n - k)) * kMul;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return static_cast<size_t>(h);
  }

  static bool same_segment(std::string_view a, std::string_view b) {
    const size_t n = a.size();
    if (n != b.size()) return false;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
      if (load_word(a.data() + k) != load_word(b.data() + k)) return false;
    }
    return k == n || load_tail(a.data() + k, n - k) == load_tail(b.data() + k, n - k);
  }

  template <class F>
  static void walk(const Node* node, size_t i, MatchState<F>& state);

  template <class F>
  static void walk_double_star(const Node* node, size_t from, MatchState<F>& state);

  template <class F>
  void match_segments(Segments segments, F& visit) const;

  void prune(Node* node);

  std::unique_ptr<Node> root_;
  std::unordered_map<Handle, Node*> handles_;
  Handle next_handle_ = 1;
  size_t node_count_ = 0;
};

template <typename V>
typename TopicTrie<V>::Handle TopicTrie<V>::insert(std::string_view pattern, V value) {
  if (root_ == nullptr) root_ = std::make_unique<Node>();
  Node* node = root_.get();
  bool after_double_star = false;
  size_t start = 0;
  while (!pattern.empty() && start <= pattern.size()) {
    size_t dot = pattern.find('.', start);
    if (dot == std::string_view::npos) dot = pattern.size();
    const std::string_view segment = pattern.substr(start, dot - start);
    start = dot + 1;
    if (segment == "**") {
      if (after_double_star) continue;  // "**.**" matches exactly what "**" does
      after_double_star = true;
      if (node->double_star == nullptr) {
        auto child = std::make_unique<Node>();
        child->parent = node;
        child->edge = Edge::kDoubleStar;
        child->double_stars = node->double_stars + 1;
        node->double_star = std::move(child);
        ++node_count_;
      }
      node = node->double_star.get();
      continue;
    }
    after_double_star = false;
    if (segment == "*") {
      if (node->star == nullptr) {
        auto child = std::make_unique<Node>();
        child->parent = node;
        child->edge = Edge::kStar;
        child->double_stars = node->double_stars;
        node->star = std::move(child);
        ++node_count_;
      }
      node = node->star.get();
      continue;
    }
    const size_t hash = hash_segment(segment);
    Node* next = node->children.find(segment, hash);
    if (next == nullptr) {
      auto child = std::make_unique<Node>();
      child->parent = node;
      child->edge = Edge::kLiteral;
      child->double_stars = node->double_stars;
      child->hash = hash;
      child->key = std::string(segment);
      next = node->children.add(std::move(child));
      ++node_count_;
    }
    node = next;
  }
  const Handle handle = next_handle_++;
  node->subscribers.emplace_back(handle, std::move(value));
  handles_.emplace(handle, node);
  return handle;
}

template <typename V>
bool TopicTrie<V>::remove(Handle handle) {
  const auto it = handles_.find(handle);
  if (it == handles_.end()) return false;
  Node* node = it->second;
  handles_.erase(it);
  auto& subscribers = node->subscribers;
  for (auto s = subscribers.begin(); s != subscribers.end(); ++s) {
    if (s->first == handle) {
      subscribers.erase(s);
      break;
    }
  }
  prune(node);
  return true;
}

template <typename V>
void TopicTrie<V>::prune(Node* node) {
  while (node->edge != Edge::kRoot && node->prunable()) {
    Node* parent = node->parent;
    switch (node->edge) {
      case Edge::kLiteral:
        parent->children.erase(node);
        break;
      case Edge::kStar:
        parent->star.reset();
        break;
      case Edge::kDoubleStar:
        parent->double_star.reset();
        break;
      case Edge::kRoot:
        break;
    }
    --node_count_;
    node = parent;
  }
}

template <typename V>
template <class F>
void TopicTrie<V>::match(std::string_view channel, F&& visit) const {
  if (root_ == nullptr) return;
  // Valid channels have at most kMaxChannelSegments segments and are split on
  // the stack; anything longer takes a heap detour rather than being refused.
  Segment inline_segments[kMaxChannelSegments];
  size_t count = 0;
  if (!channel.empty()) {
    // A plain scan: memchr's call overhead dominates on segments this short.
    const char* text = channel.data();
    size_t start = 0;
    for (size_t k = 0; k <= channel.size(); ++k) {
      if (k < channel.size() && text[k] != '.') continue;
      if (count == kMaxChannelSegments) {
        std::vector<Segment> segments;
        for (std::string_view segment : split_channel(channel)) {
          segments.push_back(Segment{segment.data(), segment.size(), hash_segment(segment)});
        }
        match_segments(Segments{segments.data(), segments.size()}, visit);
        return;
      }
      const std::string_view segment(text + start, k - start);
      inline_segments[count++] = Segment{segment.data(), segment.size(), hash_segment(segment)};
      start = k + 1;
    }
  }
  match_segments(Segments{inline_segments, count}, visit);
}

template <typename V>
template <class F>
void TopicTrie<V>::match_segments(Segments segments, F& visit) const {
  MatchState<F> state(segments, visit);
  walk(root_.get(), 0, state);
}

template <typename V>
template <class F>
void TopicTrie<V>::walk(const Node* node, size_t i, MatchState<F>& state) {
  const size_t n = state.segments.size;
  for (;;) {
    if (i < n && (node->star != nullptr || node->double_star != nullptr)) {
      node->children.prefetch(state.segments.data[i].hash);
    }
    if (node->double_star != nullptr) walk_double_star(node->double_star.get(), i, state);
    if (i == n) {
      for (const auto& subscriber : node->subscribers) state.visit(subscriber.second);
      return;
    }
    const Segment& segment = state.segments.data[i];
    if (node->star != nullptr) walk(node->star.get(), i + 1, state);
    node = node->children.find(segment.text(), segment.hash);
    if (node == nullptr) return;
    ++i;
  }
}

template <typename V>
template <class F>
void TopicTrie<V>::walk_double_star(const Node* node, size_t from, MatchState<F>& state) {
  const size_t n = state.segments.size;
  size_t until = n + 1;  // exclusive end of the positions "**" may resume at
  if (node->double_stars >= 2) {
    until = std::min(until, state.expanded.claim(node, from));
    if (from >= until) return;
  }
  // A "**" that ends its pattern can only resume at the end of the channel.
  if (node->children.empty() && node->star == nullptr && node->double_star == nullptr) {
    if (until > n) walk(node, n, state);
    return;
  }
  for (size_t j = from; j < until; ++j) walk(node, j, state);
}

}  // namespace lotus
