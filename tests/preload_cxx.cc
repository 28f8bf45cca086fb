// preload_cxx.cc - owns the C++ test of libhakmem.so under LD_PRELOAD
// (docs/DESIGN.md, The malloc front): all 20 replaceable operator new /
// delete forms (plain, array, nothrow, align_val_t, sized, aligned sized)
// resolve into libhakmem.so and each call reaches HAKMEM (statistics move by
// exactly one allocation or free; the call that starts the background
// thread, by pthread_create's allocations more); results are aligned (64 B, 4 KiB, 1 MiB
// ...), writable and known to malloc_usable_size; new-expressions,
// overaligned types and library containers work; huge sizes throw
// std::bad_alloc (after the new-handler) and nothrow forms return nullptr.
#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "check.h"

static std::size_t opaque(std::size_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

// ---- HAKMEM introspection --------------------------------------------------------

using mallctl_fn = int (*)(const char *, void *, std::size_t *, void *, std::size_t);
static mallctl_fn ctl;

static std::uint64_t stat(const char *name) {
    std::uint64_t v = 0;
    std::size_t len = sizeof v;
    CHECK(ctl(name, &v, &len, nullptr, 0) == 0);
    return v;
}

// bg: the PageArena's background thread runs.  The call that starts it
// (an allocation slow path) also makes pthread_create's own allocations.
struct Counts {
    std::uint64_t m, f, bg;
};
static Counts counts() {
    return {stat("stats.tiny.nmalloc") + stat("stats.mid.nmalloc") + stat("stats.l25.nmalloc") +
                stat("stats.large.nmalloc"),
            stat("stats.tiny.nfree") + stat("stats.mid.nfree") + stat("stats.l25.nfree") +
                stat("stats.large.nfree"),
            stat("stats.page_arena.background.running")};
}

static bool in_hakmem(const char *sym) {
    void *f = dlsym(RTLD_DEFAULT, sym);
    Dl_info info;
    return f && dladdr(f, &info) && info.dli_fname && std::strstr(info.dli_fname, "libhakmem");
}

// ---- blocks ----------------------------------------------------------------------

static void fill_check(void *p, std::size_t n, std::size_t align, const char *what) {
    if (!p) {
        std::fprintf(stderr, "%s(%zu, align %zu) returned null\n", what, n, align);
        std::exit(1);
    }
    if (reinterpret_cast<std::uintptr_t>(p) % align != 0 || malloc_usable_size(p) < n) {
        std::fprintf(stderr, "%s(%zu, align %zu) = %p, usable %zu\n", what, n, align, p,
                     malloc_usable_size(p));
        std::exit(1);
    }
    auto *b = static_cast<unsigned char *>(p);
    for (std::size_t i = 0; i < n; i++)
        b[i] = static_cast<unsigned char>(i * 31 + n);
    for (std::size_t i = 0; i < n; i++)
        CHECK(b[i] == static_cast<unsigned char>(i * 31 + n));
}

// One allocation: exactly one more malloc in HAKMEM's statistics.
#define ALLOC(expr, n, align, what)                                               \
    ({                                                                            \
        Counts c0_ = counts();                                                    \
        void *p_ = (expr);                                                        \
        Counts c1_ = counts();                                                    \
        bool started_ = !c0_.bg && c1_.bg; /* and allocated for the thread */    \
        if (started_ ? c1_.m < c0_.m + 1 : c1_.m != c0_.m + 1) {                  \
            std::fprintf(stderr, "%s(%zu, align %zu): HAKMEM counted %llu mallocs\n", \
                         what, (std::size_t)(n), (std::size_t)(align),            \
                         (unsigned long long)(c1_.m - c0_.m));                    \
            std::exit(1);                                                         \
        }                                                                         \
        fill_check(p_, n, align, what);                                           \
        p_;                                                                       \
    })

// One free: exactly one more free in HAKMEM's statistics.
#define FREE(stmt, what)                                                          \
    do {                                                                          \
        Counts c0_ = counts();                                                    \
        stmt;                                                                     \
        Counts c1_ = counts();                                                    \
        if (c1_.f != c0_.f + 1) {                                                 \
            std::fprintf(stderr, "%s: HAKMEM counted %llu frees\n", what,         \
                         (unsigned long long)(c1_.f - c0_.f));                    \
            std::exit(1);                                                         \
        }                                                                         \
    } while (0)

static void test_symbols() {
    static const char *const syms[20] = {
        "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
        "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
        "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
        "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdlPvm",
        "_ZdaPvm", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
        "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
        "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t"};
    for (const char *s : syms)
        if (!in_hakmem(s)) {
            std::fprintf(stderr, "%s does not resolve into libhakmem.so\n", s);
            std::exit(1);
        }
    CHECK(in_hakmem("malloc") && in_hakmem("malloc_usable_size"));
}

static void test_forms() {
    static const std::size_t sizes[] = {1, 24, 1000, 1025, 5000, 65537, 100000, 2 << 20, 3 << 20};
    static const std::size_t aligns[] = {16, 32, 64, 256, 4096, 65536, 1 << 20};
    for (std::size_t n : sizes) {
        void *p;
        p = ALLOC(::operator new(n), n, 16, "operator new");
        FREE(::operator delete(p), "operator delete(void*)");
        p = ALLOC(::operator new[](n), n, 16, "operator new[]");
        FREE(::operator delete[](p), "operator delete[](void*)");
        p = ALLOC(::operator new(n, std::nothrow), n, 16, "operator new(nothrow)");
        FREE(::operator delete(p, std::nothrow), "operator delete(void*, nothrow)");
        p = ALLOC(::operator new[](n, std::nothrow), n, 16, "operator new[](nothrow)");
        FREE(::operator delete[](p, std::nothrow), "operator delete[](void*, nothrow)");
        p = ALLOC(::operator new(n), n, 16, "operator new");
        FREE(::operator delete(p, n), "operator delete(void*, size_t)");
        p = ALLOC(::operator new[](n), n, 16, "operator new[]");
        FREE(::operator delete[](p, n), "operator delete[](void*, size_t)");
        for (std::size_t a : aligns) {
            std::align_val_t al{a};
            p = ALLOC(::operator new(n, al), n, a, "operator new(align)");
            FREE(::operator delete(p, al), "operator delete(void*, align)");
            p = ALLOC(::operator new[](n, al), n, a, "operator new[](align)");
            FREE(::operator delete[](p, al), "operator delete[](void*, align)");
            p = ALLOC(::operator new(n, al, std::nothrow), n, a, "operator new(align, nothrow)");
            FREE(::operator delete(p, al, std::nothrow), "operator delete(void*, align, nothrow)");
            p = ALLOC(::operator new[](n, al, std::nothrow), n, a, "operator new[](align, nothrow)");
            FREE(::operator delete[](p, al, std::nothrow),
                 "operator delete[](void*, align, nothrow)");
            p = ALLOC(::operator new(n, al), n, a, "operator new(align)");
            FREE(::operator delete(p, n, al), "operator delete(void*, size_t, align)");
            p = ALLOC(::operator new[](n, al), n, a, "operator new[](align)");
            FREE(::operator delete[](p, n, al), "operator delete[](void*, size_t, align)");
        }
    }
}

struct alignas(64) Line {
    char c[100];
};
struct alignas(4096) Page {
    char c[5000];
};

static void test_expressions() {
    int *i = new int(7);
    CHECK(*i == 7 && malloc_usable_size(i) >= sizeof(int));
    delete i;
    long *arr = new long[1000]();
    for (int k = 0; k < 1000; k++)
        CHECK(arr[k] == 0);
    CHECK(malloc_usable_size(arr) >= 1000 * sizeof(long));
    delete[] arr;
    Line *l = new Line;
    CHECK(reinterpret_cast<std::uintptr_t>(l) % 64 == 0 && malloc_usable_size(l) >= sizeof(Line));
    std::memset(l, 1, sizeof *l);
    delete l;
    Line *ls = new Line[7];
    CHECK(reinterpret_cast<std::uintptr_t>(ls) % 64 == 0);
    std::memset(ls, 2, 7 * sizeof(Line));
    delete[] ls;
    Page *pg = new Page;
    CHECK(reinterpret_cast<std::uintptr_t>(pg) % 4096 == 0 && malloc_usable_size(pg) >= sizeof(Page));
    std::memset(pg, 3, sizeof *pg);
    delete pg;
    Page *pgs = new (std::nothrow) Page[3];
    CHECK(pgs && reinterpret_cast<std::uintptr_t>(pgs) % 4096 == 0);
    std::memset(pgs, 4, 3 * sizeof(Page));
    delete[] pgs;

    // Containers: many small nodes, growing buffers, shared control blocks.
    std::vector<std::string> v;
    std::map<int, std::string> m;
    for (int k = 0; k < 20000; k++) {
        v.push_back(std::string(static_cast<std::size_t>(k % 300), static_cast<char>('a' + k % 26)));
        m[k] = v.back();
    }
    std::size_t total = 0;
    for (const auto &kv : m)
        total += kv.second.size();
    CHECK(total == 20000 / 300 * (299 * 300 / 2) + (20000 % 300) * (20000 % 300 - 1) / 2);
    auto sp = std::make_shared<std::vector<Line>>(1000);
    CHECK(reinterpret_cast<std::uintptr_t>(sp->data()) % 64 == 0);
    auto up = std::make_unique<char[]>(3 << 20);
    up[(3 << 20) - 1] = 1;
    CHECK(malloc_usable_size(up.get()) >= (3u << 20));
}

static int handler_calls;
static void handler() {
    handler_calls++;
    std::set_new_handler(nullptr); // give up on the next attempt
}

static void test_huge() {
    const std::size_t huge = opaque(SIZE_MAX / 2), huger = opaque(SIZE_MAX - 4096);
    bool thrown = false;
    try {
        void *p = ::operator new(huge);
        std::fprintf(stderr, "operator new(huge) = %p\n", p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown);
    thrown = false;
    try {
        void *p = ::operator new[](huger);
        std::fprintf(stderr, "operator new[](huge) = %p\n", p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown);
    thrown = false;
    try {
        void *p = ::operator new(huge, std::align_val_t{4096});
        std::fprintf(stderr, "operator new(huge, 4096) = %p\n", p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown);
    thrown = false;
    try {
        char *p = new char[huge];
        std::fprintf(stderr, "new char[huge] = %p\n", static_cast<void *>(p));
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown);
    CHECK(::operator new(huge, std::nothrow) == nullptr);
    CHECK(::operator new[](huger, std::nothrow) == nullptr);
    CHECK(::operator new(huge, std::align_val_t{64}, std::nothrow) == nullptr);
    CHECK(::operator new[](huge, std::align_val_t{1 << 20}, std::nothrow) == nullptr);
    CHECK(new (std::nothrow) char[huge] == nullptr);

    // The new-handler runs before bad_alloc is thrown.
    std::set_new_handler(handler);
    thrown = false;
    try {
        void *p = ::operator new(huge);
        std::fprintf(stderr, "operator new(huge) = %p\n", p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown && handler_calls == 1);
    std::set_new_handler(handler);
    CHECK(::operator new(huge, std::align_val_t{64}, std::nothrow) == nullptr);
    CHECK(handler_calls == 2);
    CHECK(std::get_new_handler() == nullptr);

    // Still usable afterwards.
    void *p = ::operator new(100);
    fill_check(p, 100, 16, "operator new after bad_alloc");
    ::operator delete(p);
}

int main() {
    void *sym = dlsym(RTLD_DEFAULT, "hak_mallctl");
    if (!sym) {
        std::fprintf(stderr, "HAKMEM is not live: run with LD_PRELOAD=libhakmem.so\n");
        return 1;
    }
    std::memcpy(&ctl, &sym, sizeof ctl);
    test_symbols();
    test_forms();
    test_expressions();
    test_huge();
    std::printf("preload_cxx: all 20 operator forms served by HAKMEM, all checks passed\n");
    return 0;
}
