// Keeps the built-in module object library non-empty when no built-in module
// exists yet; each module under modules/ registers itself from its own file.
namespace lotus {
int builtin_modules_anchor = 0;
}  // namespace lotus
