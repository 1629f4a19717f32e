// Where module instances come from: the registry of modules compiled into
// the lotus binary (keyed by module name, so the nucleus never names a
// concrete module), and shared-library plugins found through a manifest's
// `runtime.library`.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "lotus/manifest.h"
#include "lotus/module.h"
#include "lotus/status.h"

namespace lotus {

// Owns a module instance and knows how to free it on the side that made it.
using ModulePtr = std::unique_ptr<Module, std::function<void(Module*)>>;

class ModuleFactory {
 public:
  virtual ~ModuleFactory() = default;
  virtual Result<ModulePtr> create() = 0;
  // What the instances come from, for messages ("built in", a library path).
  virtual std::string origin() const = 0;
};

class BuiltinModules {
 public:
  using Create = std::function<std::unique_ptr<Module>()>;
  static BuiltinModules& instance();
  void add(std::string name, Create create);
  const Create* find(std::string_view name) const;

 private:
  std::map<std::string, Create, std::less<>> creators_;
};

// Registers a module class compiled into lotus under `name`.
template <typename M>
struct RegisterBuiltinModule {
  explicit RegisterBuiltinModule(std::string name) {
    BuiltinModules::instance().add(std::move(name), [] { return std::make_unique<M>(); });
  }
};

// Picks the factory a manifest asks for. For plugins, the library is first
// copied to `cache_dir` under a unique name: dlopen() would hand back the old
// mapping for a path it already has open, and a library rewritten in place
// while mapped would crash the process, so hot reload always loads a copy.
Result<std::unique_ptr<ModuleFactory>> make_module_factory(const Manifest& manifest,
                                                           const std::filesystem::path& cache_dir);

}  // namespace lotus
