/* A shared library that is not a LOTUS module at all. */
__attribute__((visibility("default"))) int not_a_module(void) { return 1; }
