#include "runtime/module_factory.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <system_error>

#include "lotus/strings.h"

namespace lotus {
namespace {

std::string hex(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "%#llx", static_cast<unsigned long long>(value));
  return buffer;
}

class BuiltinFactory final : public ModuleFactory {
 public:
  BuiltinFactory(std::string name, BuiltinModules::Create create)
      : name_(std::move(name)), create_(std::move(create)) {}
  Result<ModulePtr> create() override {
    std::unique_ptr<Module> module = create_();
    if (!module) return absl::InternalError(cat("built-in module ", name_, " not created"));
    return ModulePtr(module.release(), [](Module* m) { delete m; });
  }
  std::string origin() const override { return "built in"; }

 private:
  std::string name_;
  BuiltinModules::Create create_;
};

// A loaded plugin library. It is never dlclose()d: code from a plugin
// (coroutine frames finishing, std::function thunks, exception objects) can
// still be on a stack for a few instructions after its last instance is
// destroyed, and unmapping it then crashes the nucleus. A reload therefore
// costs the size of the library in address space, which is the price of
// reloads that cannot crash.
class PluginLibrary {
 public:
  using AbiFn = uint64_t (*)();
  using CreateFn = Module* (*)();
  using DestroyFn = void (*)(Module*);

  PluginLibrary(CreateFn create_fn, DestroyFn destroy_fn)
      : create_(create_fn), destroy_(destroy_fn) {}

  Module* create() const { return create_(); }
  void destroy(Module* module) const { destroy_(module); }

 private:
  CreateFn create_;
  DestroyFn destroy_;
};

class PluginFactory final : public ModuleFactory {
 public:
  PluginFactory(std::filesystem::path source, std::shared_ptr<PluginLibrary> library)
      : source_(std::move(source)), library_(std::move(library)) {}
  Result<ModulePtr> create() override {
    Module* module = library_->create();
    if (module == nullptr) {
      return absl::InternalError(
          cat(source_.string(), ": lotus_module_create() returned no module"));
    }
    return ModulePtr(module, [library = library_](Module* m) { library->destroy(m); });
  }
  std::string origin() const override { return source_.string(); }

 private:
  std::filesystem::path source_;
  std::shared_ptr<PluginLibrary> library_;
};

Result<std::shared_ptr<PluginLibrary>> load_plugin(const std::filesystem::path& library,
                                                   const std::filesystem::path& cache_dir,
                                                   const std::string& module_name) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(library, ec)) {
    return absl::NotFoundError(
        cat(library.string(), ": plugin library not found (runtime.library)"));
  }
  std::filesystem::create_directories(cache_dir, ec);
  static std::atomic<uint64_t> serial{0};
  std::filesystem::path copy =
      cache_dir / cat(module_name, "-", ::getpid(), "-", serial.fetch_add(1), ".so");
  std::filesystem::copy_file(library, copy, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    return absl::InternalError(
        cat("cannot copy plugin ", library.string(), " to ", copy.string(), ": ", ec.message()));
  }
  void* handle = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::string why = dlerror();
    std::filesystem::remove(copy, ec);
    return absl::FailedPreconditionError(cat(library.string(), ": cannot load plugin: ", why));
  }
  auto fail = [&](std::string why) -> Status {
    dlclose(handle);
    std::filesystem::remove(copy, ec);
    return absl::FailedPreconditionError(cat(library.string(), ": ", why));
  };
  auto abi = reinterpret_cast<PluginLibrary::AbiFn>(dlsym(handle, "lotus_module_abi"));
  auto create = reinterpret_cast<PluginLibrary::CreateFn>(dlsym(handle, "lotus_module_create"));
  auto destroy = reinterpret_cast<PluginLibrary::DestroyFn>(dlsym(handle, "lotus_module_destroy"));
  if (abi == nullptr || create == nullptr || destroy == nullptr) {
    return fail(
        "not a LOTUS module library (missing lotus_module_abi/create/destroy; "
        "did the source end with LOTUS_MODULE(YourClass)?)");
  }
  if (uint64_t stamp = abi(); stamp != LOTUS_ABI_STAMP) {
    return fail(cat("built for module ABI stamp ", hex(stamp), ", this lotus needs ",
                    hex(LOTUS_ABI_STAMP),
                    "; rebuild the plugin against this version's include/lotus"));
  }
  // The mapping keeps the code; the copy's name is no longer needed, and
  // removing it now leaves nothing behind even if the process is killed.
  std::filesystem::remove(copy, ec);
  return std::make_shared<PluginLibrary>(create, destroy);
}

}  // namespace

BuiltinModules& BuiltinModules::instance() {
  static BuiltinModules registry;
  return registry;
}

void BuiltinModules::add(std::string name, Create create) {
  creators_[std::move(name)] = std::move(create);
}

const BuiltinModules::Create* BuiltinModules::find(std::string_view name) const {
  auto it = creators_.find(name);
  return it == creators_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<ModuleFactory>> make_module_factory(const Manifest& manifest,
                                                           const std::filesystem::path& cache_dir) {
  if (manifest.runtime.kind != Manifest::Runtime::Kind::kNative) {
    return absl::UnimplementedError(
        cat(manifest.path.string(), ": runtime: \"", to_string(manifest.runtime.kind),
            "\" modules are not supported by this build yet (use native)"));
  }
  if (manifest.runtime.library.empty()) {
    const BuiltinModules::Create* create = BuiltinModules::instance().find(manifest.name);
    if (create == nullptr) {
      return absl::NotFoundError(cat(manifest.path.string(),
                                     ": runtime: no built-in module named \"", manifest.name,
                                     "\" and no runtime.library given"));
    }
    return std::unique_ptr<ModuleFactory>(std::make_unique<BuiltinFactory>(manifest.name, *create));
  }
  std::filesystem::path library = manifest.directory / manifest.runtime.library;
  auto loaded = load_plugin(library, cache_dir, manifest.name);
  if (!loaded.ok()) return loaded.status();
  return std::unique_ptr<ModuleFactory>(
      std::make_unique<PluginFactory>(library, std::move(*loaded)));
}

}  // namespace lotus
