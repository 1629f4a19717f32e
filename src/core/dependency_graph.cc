#include "core/dependency_graph.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <string_view>
#include <tuple>

#include "lotus/strings.h"

namespace lotus {
namespace {

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.append(separator);
    out.append(items[i]);
  }
  return out;
}

std::string quote(std::string_view s) { return cat("\"", s, "\""); }

class Resolver {
 public:
  Resolver(const std::vector<Manifest>& manifests,
           const std::map<std::string, Status>& already_failed)
      : already_failed_(already_failed) {
    for (auto& [name, reason] : already_failed_) {
      if (reason.ok() || reason.message().empty()) {
        reason = absl::FailedPreconditionError(cat("module ", quote(name), " failed earlier"));
      }
    }
    std::map<std::string, std::vector<const Manifest*>> by_name;
    for (const Manifest& m : manifests) by_name[m.name].push_back(&m);
    for (const auto& [name, list] : by_name) {
      if (list.size() == 1) {
        nodes_[name] = list.front();
        continue;
      }
      std::vector<std::string> paths;
      for (const Manifest* m : list) paths.push_back(m->path.string());
      excluded_[name] = absl::FailedPreconditionError(
          cat("module ", quote(name), " is defined more than once: ", join(paths, ", ")));
    }
    for (const auto& [name, reason] : already_failed_) {
      if (nodes_.count(name) > 0) excluded_[name] = reason;
    }
  }

  ResolvedOrder resolve() {
    exclude_cycles();
    for (const auto& [name, manifest] : nodes_) evaluate(name);
    ResolvedOrder result;
    result.order = load_order();
    for (auto& [name, reason] : excluded_) result.excluded.emplace_back(name, std::move(reason));
    return result;
  }

 private:
  bool usable(const std::string& name) const {
    return nodes_.count(name) > 0 && excluded_.count(name) == 0;
  }

  // Dependencies of `name` that are themselves still candidates, sorted and
  // without repeats.
  std::vector<std::string> usable_dependencies(const std::string& name) const {
    std::set<std::string> deps;
    for (const Manifest::Requirement& r : nodes_.at(name)->dependencies.modules) {
      if (usable(r.name)) deps.insert(r.name);
    }
    return {deps.begin(), deps.end()};
  }

  // Tarjan's strongly connected components; every module in a component with
  // more than one member (or that needs itself) sits on a cycle.
  void exclude_cycles() {
    std::map<std::string, int> index;
    std::map<std::string, int> low;
    std::set<std::string> on_stack;
    std::vector<std::string> stack;
    std::vector<std::vector<std::string>> components;
    int next = 0;
    std::function<void(const std::string&)> connect = [&](const std::string& v) {
      index[v] = low[v] = next++;
      stack.push_back(v);
      on_stack.insert(v);
      for (const std::string& w : usable_dependencies(v)) {
        if (index.count(w) == 0) {
          connect(w);
          low[v] = std::min(low[v], low[w]);
        } else if (on_stack.count(w) > 0) {
          low[v] = std::min(low[v], index[w]);
        }
      }
      if (low[v] != index[v]) return;
      std::vector<std::string> component;
      std::string w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack.erase(w);
        component.push_back(w);
      } while (w != v);
      components.push_back(std::move(component));
    };
    for (const auto& [name, manifest] : nodes_) {
      if (usable(name) && index.count(name) == 0) connect(name);
    }

    std::map<std::string, Status> cycle_reasons;
    for (const std::vector<std::string>& component : components) {
      std::set<std::string> members(component.begin(), component.end());
      for (const std::string& member : component) {
        std::vector<std::string> cycle = shortest_cycle(member, members);
        if (cycle.empty()) continue;  // a lone module that does not need itself
        // Start at the smallest name, so every member reports the same cycle.
        std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
        cycle.push_back(cycle.front());
        cycle_reasons[member] =
            absl::FailedPreconditionError(cat("dependency cycle: ", join(cycle, " -> ")));
      }
    }
    for (auto& [name, reason] : cycle_reasons) excluded_[name] = std::move(reason);
  }

  // The shortest path from `start` back to itself inside `members`, as the
  // list of modules on it (start first, not repeated at the end).
  std::vector<std::string> shortest_cycle(const std::string& start,
                                          const std::set<std::string>& members) const {
    std::map<std::string, std::string> parent;
    std::deque<std::string> queue;
    for (const std::string& w : usable_dependencies(start)) {
      if (members.count(w) == 0 || parent.count(w) > 0) continue;
      parent[w] = start;
      queue.push_back(w);
    }
    while (!queue.empty()) {
      std::string v = queue.front();
      queue.pop_front();
      if (v == start) {
        std::vector<std::string> path;
        std::string at = parent[start];
        while (at != start) {
          path.push_back(at);
          at = parent[at];
        }
        path.push_back(start);
        std::reverse(path.begin(), path.end());
        return path;
      }
      for (const std::string& w : usable_dependencies(v)) {
        if (members.count(w) == 0 || parent.count(w) > 0) continue;
        parent[w] = v;
        queue.push_back(w);
      }
    }
    return {};
  }

  // Decides whether `name` can load; after cycles are gone the remaining
  // graph is acyclic, so this recursion ends.
  void evaluate(const std::string& name) {
    if (excluded_.count(name) > 0 || ok_.count(name) > 0) return;
    const Manifest& m = *nodes_.at(name);
    for (const Manifest::Requirement& r : m.dependencies.modules) {
      std::string needs = cat("module ", quote(name), " needs ", quote(r.name));
      if (nodes_.count(r.name) > 0) evaluate(r.name);
      const Status* failed = nullptr;
      if (auto it = excluded_.find(r.name); it != excluded_.end()) {
        failed = &it->second;
      } else if (auto f = already_failed_.find(r.name); f != already_failed_.end()) {
        failed = &f->second;
      }
      if (failed != nullptr) {
        excluded_[name] =
            absl::FailedPreconditionError(cat(needs, ", which failed: ", message_of(*failed)));
        return;
      }
      auto dep = nodes_.find(r.name);
      if (dep == nodes_.end()) {
        excluded_[name] = absl::FailedPreconditionError(cat(needs, ", which is not available"));
        return;
      }
      if (!r.constraint.allows(dep->second->version)) {
        excluded_[name] = absl::FailedPreconditionError(
            cat("module ", quote(name), " needs ", quote(r.to_string()), ", but ", quote(r.name),
                " is version ", dep->second->version.to_string()));
        return;
      }
    }
    ok_.insert(name);
  }

  // Kahn's algorithm; the ready set is ordered by (priority rank, name).
  std::vector<const Manifest*> load_order() const {
    std::map<std::string, size_t> waiting_on;
    std::map<std::string, std::vector<std::string>> dependents;
    for (const std::string& name : ok_) {
      std::vector<std::string> deps = usable_dependencies(name);
      waiting_on[name] = deps.size();
      for (const std::string& d : deps) dependents[d].push_back(name);
    }
    std::set<std::tuple<int, std::string>> ready;
    for (const auto& [name, count] : waiting_on) {
      if (count == 0) ready.emplace(priority_rank(nodes_.at(name)->priority), name);
    }
    std::vector<const Manifest*> order;
    while (!ready.empty()) {
      std::string name = std::get<1>(*ready.begin());
      ready.erase(ready.begin());
      order.push_back(nodes_.at(name));
      for (const std::string& d : dependents[name]) {
        if (--waiting_on[d] == 0) ready.emplace(priority_rank(nodes_.at(d)->priority), d);
      }
    }
    return order;
  }

  std::map<std::string, Status> already_failed_;
  std::map<std::string, const Manifest*> nodes_;  // unique names only
  std::map<std::string, Status> excluded_;
  std::set<std::string> ok_;
};

}  // namespace

ResolvedOrder resolve_load_order(const std::vector<Manifest>& manifests,
                                 const std::map<std::string, Status>& already_failed) {
  return Resolver(manifests, already_failed).resolve();
}

ResolvedOrder resolve_load_order(const std::vector<Manifest>& manifests,
                                 const std::set<std::string>& already_failed) {
  std::map<std::string, Status> reasons;
  for (const std::string& name : already_failed) reasons[name] = Status();
  return Resolver(manifests, reasons).resolve();
}

}  // namespace lotus
