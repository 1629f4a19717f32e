// Load order for a set of modules, from their manifests' module dependencies.
//
// Dependencies load before their dependents; among modules whose dependencies
// are all loaded, higher priority goes first, then the name decides, so the
// order never depends on discovery order. A module that cannot start (its
// dependency is missing, failed, excluded or the wrong version; it sits on a
// dependency cycle; its name is taken twice) is set aside with the reason,
// and so is everything that needs it, while the rest still resolve.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lotus/manifest.h"
#include "lotus/status.h"

namespace lotus {

struct ResolvedOrder {
  // Pointers into the vector given to resolve_load_order; load in this order.
  std::vector<const Manifest*> order;
  // Module name and why it will not load, sorted by name. The status is
  // FailedPrecondition, except that a module named in `already_failed` keeps
  // the status given there.
  // Messages read like `module "x" needs "y", which is not available`,
  // `dependency cycle: a -> b -> a` or
  // `module "z" needs "x", which failed: module "x" needs "y", ...`.
  std::vector<std::pair<std::string, Status>> excluded;
};

// `already_failed` names modules known to have failed (with why): they are
// excluded themselves and count as failed dependencies for others.
ResolvedOrder resolve_load_order(const std::vector<Manifest>& manifests,
                                 const std::map<std::string, Status>& already_failed);
// The same, for when only the names of failed modules are known.
ResolvedOrder resolve_load_order(const std::vector<Manifest>& manifests,
                                 const std::set<std::string>& already_failed = {});

}  // namespace lotus
