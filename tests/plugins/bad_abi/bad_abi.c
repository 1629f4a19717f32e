/* A plugin built for another module ABI: the nucleus must refuse it before
   calling anything but lotus_module_abi(). */
#include <stdint.h>
#include <stdlib.h>

__attribute__((visibility("default"))) uint64_t lotus_module_abi(void) { return 42; }
__attribute__((visibility("default"))) void* lotus_module_create(void) { abort(); }
__attribute__((visibility("default"))) void lotus_module_destroy(void* module) {
  (void)module;
  abort();
}
