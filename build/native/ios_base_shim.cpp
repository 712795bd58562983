// Provides std::ios_base_library_init(), the only GLIBCXX_3.4.32 symbol libLibTorchSharp.so needs.
// Older libstdc++ (Debian 12: 3.4.30) lacks it; a static ios_base::Init does the same job:
// it makes sure the standard streams are constructed before TorchSharp uses them.
#include <ios>

namespace std {
void ios_base_library_init() {
    static ios_base::Init init;
}
}
