// preload_misuse_cxx.cc - owns the C++ helper of the misuse tests (run by
// preload_driver under LD_PRELOAD): operator delete of pointers HAKMEM does
// not own, and a double delete.  Each case prints the pointer it is about to
// misuse (printf "%p"), misuses it, and prints "continued" if it survives
// (HAKMEM_ON_ERROR=warn).
//
// Usage: preload_misuse_cxx CASE
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "check.h"

template <typename T> static T *launder(T *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void announce(const void *p) {
    std::printf("%p\n", p);
    std::fflush(stdout);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    const char *c = argv[1];
    if (std::strcmp(c, "delete_stack") == 0) {
        long buf[8] = {0};
        announce(buf);
        ::operator delete(launder(static_cast<void *>(buf)));
    } else if (std::strcmp(c, "delete_interior") == 0) {
        int *p = new int[100];
        announce(p + 4);
        delete[] launder(p + 4);
    } else if (std::strcmp(c, "delete_sized_interior") == 0) {
        char *p = static_cast<char *>(::operator new(5000));
        announce(p + 64);
        ::operator delete(launder(static_cast<void *>(p + 64)), 4936);
    } else if (std::strcmp(c, "double_delete") == 0) {
        long *p = new long(42);
        long *again = launder(p); // the same pointer, hidden from the compiler
        announce(p);
        delete p;
        delete again;
    } else {
        std::fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    long *q = new long[64]; // still usable
    for (int i = 0; i < 64; i++)
        q[i] = i;
    CHECK(q[63] == 63);
    delete[] q;
    std::printf("continued\n");
    return 0;
}
