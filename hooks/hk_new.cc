// hk_new.cc - owns the C++ operator new / delete forms of libhakmem.so but
// the six hot ones (plain and array new, unsized and sized delete), which
// hk_exports.c defines as the fast path itself: nothrow, align_val_t and the
// aligned deletes, and the new-handler loop of every throwing new.  A
// throwing new calls the new-handler and retries, then throws
// std::bad_alloc, as the standard says.
#include <cstddef>
#include <new>

#define HK_EXPORT __attribute__((visibility("default")))

extern "C" {
void *hk_cxx_new(std::size_t n);
void *hk_cxx_new_aligned(std::size_t n, std::size_t align);
void hk_cxx_delete(void *p);
void *hk_cxx_new_retry(std::size_t n);
}

static void *new_throwing(std::size_t n) {
    for (;;) {
        void *p = hk_cxx_new(n);
        if (__builtin_expect(p != nullptr, 1))
            return p;
        std::new_handler h = std::get_new_handler();
        if (!h)
            throw std::bad_alloc();
        h();
    }
}

// operator new and new[] (hk_exports.c) after the slow path failed once.
extern "C" void *hk_cxx_new_retry(std::size_t n) {
    std::new_handler h = std::get_new_handler();
    if (!h)
        throw std::bad_alloc();
    h();
    return new_throwing(n);
}

static void *new_aligned_throwing(std::size_t n, std::align_val_t a) {
    for (;;) {
        void *p = hk_cxx_new_aligned(n, static_cast<std::size_t>(a));
        if (p)
            return p;
        std::new_handler h = std::get_new_handler();
        if (!h)
            throw std::bad_alloc();
        h();
    }
}

static void *new_nothrow(std::size_t n) noexcept {
    try {
        return new_throwing(n);
    } catch (...) {
        return nullptr;
    }
}

static void *new_aligned_nothrow(std::size_t n, std::align_val_t a) noexcept {
    try {
        return new_aligned_throwing(n, a);
    } catch (...) {
        return nullptr;
    }
}

HK_EXPORT void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return new_nothrow(n); }
HK_EXPORT void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return new_nothrow(n); }
HK_EXPORT void *operator new(std::size_t n, std::align_val_t a) { return new_aligned_throwing(n, a); }
HK_EXPORT void *operator new[](std::size_t n, std::align_val_t a) { return new_aligned_throwing(n, a); }
HK_EXPORT void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    return new_aligned_nothrow(n, a);
}
HK_EXPORT void *operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    return new_aligned_nothrow(n, a);
}

HK_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept { hk_cxx_delete(p); }
HK_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept { hk_cxx_delete(p); }
HK_EXPORT void operator delete(void *p, std::align_val_t) noexcept { hk_cxx_delete(p); }
HK_EXPORT void operator delete[](void *p, std::align_val_t) noexcept { hk_cxx_delete(p); }
HK_EXPORT void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept {
    hk_cxx_delete(p);
}
HK_EXPORT void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept {
    hk_cxx_delete(p);
}
HK_EXPORT void operator delete(void *p, std::size_t, std::align_val_t) noexcept { hk_cxx_delete(p); }
HK_EXPORT void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { hk_cxx_delete(p); }
