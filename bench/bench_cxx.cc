// bench_cxx.cc - owns the bench_cxx program: the C++ workloads, kept out of
// bench_workloads so that the C workloads' processes do not load the C++
// runtime (its pages count in every peak RSS).  Command line and RESULT
// line: bench_main.c.
//
//   cxx_mixed     new/delete of mixed small objects, one thread: a table of
//                 live objects in which each step deletes a random entry
//                 (after checking it) and puts a new object there:
//                 polymorphic objects of 24-264 bytes (60%, mostly small),
//                 objects holding a std::string of 16-128 characters (15%)
//                 or a std::vector of 1-64 uint32_t (15%), char arrays of
//                 8-1024 bytes (10%);
//   cxx_mixed_mt  the same on 4 threads, each with its own table and a
//                 quarter of the steps;
//   larson_sized  the larson runner (bench_larson.c) over operator new and
//                 sized operator delete, sizes 10-1000 B skewed to the small
//                 end (the product of two uniform draws).
//
// "ops" counts the table's new and delete calls; the allocations a string
// or a vector makes inside are not counted but are made and freed.
#include <cstdint>
#include <cstring>
#include <new>
#include <pthread.h>
#include <string>
#include <vector>

#include "bench_workloads.h"

namespace {

inline unsigned char byte_of(uint64_t s) { return static_cast<unsigned char>(s ^ (s >> 23) ^ 0x6B); }

struct Obj {
    explicit Obj(uint64_t s) : stamp(s) {}
    virtual ~Obj() = default;
    virtual void check() const = 0;
    uint64_t stamp;
};

template <std::size_t N>
struct Pod final : Obj {
    explicit Pod(uint64_t s) : Obj(s) {
        std::memset(pad, 0, N);
        pad[0] = byte_of(s);
        pad[N - 1] = static_cast<unsigned char>(byte_of(s) ^ 0x5A);
    }
    void check() const override {
        if (pad[0] != byte_of(stamp) || pad[N - 1] != static_cast<unsigned char>(byte_of(stamp) ^ 0x5A))
            fail("object %p of %zu bytes was overwritten", static_cast<const void *>(this), sizeof *this);
    }
    unsigned char pad[N];
};

struct Named final : Obj {
    Named(uint64_t s, std::size_t len) : Obj(s), name(len, static_cast<char>('a' + s % 26)) {}
    void check() const override {
        char c = static_cast<char>('a' + stamp % 26);
        if (name.size() < 16 || name.front() != c || name.back() != c)
            fail("string object %p was overwritten", static_cast<const void *>(this));
    }
    std::string name;
};

struct Vec final : Obj {
    Vec(uint64_t s, std::size_t n) : Obj(s), v(n, static_cast<uint32_t>(s)) {}
    void check() const override {
        if (v.empty() || v.front() != static_cast<uint32_t>(stamp) || v.back() != static_cast<uint32_t>(stamp))
            fail("vector object %p was overwritten", static_cast<const void *>(this));
    }
    std::vector<uint32_t> v;
};

template <std::size_t N>
Obj *make_pod(uint64_t s) {
    return new Pod<N>(s);
}

// Object sizes 24-264 bytes (vtable pointer + stamp + pad).
Obj *(*const pod_makers[])(uint64_t) = {make_pod<8>,  make_pod<16>, make_pod<24>,
                                        make_pod<40>, make_pod<56>, make_pod<88>,
                                        make_pod<120>, make_pod<184>, make_pod<248>};
constexpr unsigned n_pods = sizeof pod_makers / sizeof pod_makers[0];

struct Slot {
    Obj *obj;
    char *arr;
    uint32_t n;
    uint64_t stamp;
};

void slot_fill(Slot &s, uint64_t r, uint64_t stamp) {
    unsigned kind = static_cast<unsigned>(r % 100);
    s.obj = nullptr;
    s.arr = nullptr;
    s.stamp = stamp;
    if (kind < 60) {
        unsigned a = static_cast<unsigned>((r >> 8) % n_pods), b = static_cast<unsigned>((r >> 16) % n_pods);
        s.obj = pod_makers[a < b ? a : b](stamp); // the smaller of two: mostly small
    } else if (kind < 75) {
        s.obj = new Named(stamp, 16 + static_cast<std::size_t>((r >> 8) % 113));
    } else if (kind < 90) {
        s.obj = new Vec(stamp, 1 + static_cast<std::size_t>((r >> 8) % 64));
    } else {
        s.n = 8 + static_cast<uint32_t>((r >> 8) % 1017);
        s.arr = new char[s.n];
        mark(reinterpret_cast<uint8_t *>(s.arr), s.n, tag_of(stamp, s.n));
    }
}

void slot_release(Slot &s) {
    if (s.obj) {
        s.obj->check();
        if (s.obj->stamp != s.stamp)
            fail("object %p has stamp %llx, expected %llx", static_cast<void *>(s.obj),
                 static_cast<unsigned long long>(s.obj->stamp), static_cast<unsigned long long>(s.stamp));
        delete s.obj;
    } else {
        check_mark(reinterpret_cast<const uint8_t *>(s.arr), s.n, tag_of(s.stamp, s.n));
        delete[] s.arr;
    }
    s.obj = nullptr;
    s.arr = nullptr;
}

constexpr unsigned CX_SLOTS = 10000;
constexpr unsigned CX_MAX_THREADS = 4;
constexpr uint64_t CX_STEPS = 4000000; // over all threads

struct CxThread {
    pthread_t tid;
    unsigned id;
    uint64_t steps;
    pthread_barrier_t *start;
    double t0, t1;
    std::vector<Slot> *slots;
};

void *cx_thread(void *vp) {
    CxThread *a = static_cast<CxThread *>(vp);
    std::vector<Slot> &slots = *a->slots;
    uint64_t rng = rng_seed(1100 + a->id);
    const uint64_t tid_bits = static_cast<uint64_t>(a->id) << 60;
    for (unsigned i = 0; i < CX_SLOTS; i++) // untimed fill
        slot_fill(slots[i], rng_next(&rng), tid_bits ^ i);
    pthread_barrier_wait(a->start);
    a->t0 = now_sec();
    for (uint64_t k = 0; k < a->steps; k++) {
        uint64_t r = rng_next(&rng);
        Slot &s = slots[(r >> 40) % CX_SLOTS];
        slot_release(s);
        slot_fill(s, rng_next(&rng), tid_bits ^ ((k + 1) << 16) ^ (r & 0xFFFF));
    }
    a->t1 = now_sec();
    for (Slot &s : slots) // untimed cleanup
        slot_release(s);
    return nullptr;
}

void cx_run(double scale, unsigned nthreads) {
    CxThread arg[CX_MAX_THREADS];
    std::vector<Slot> tables[CX_MAX_THREADS];
    pthread_barrier_t start;
    uint64_t steps = scaled(CX_STEPS / nthreads, scale);
    pthread_barrier_init(&start, nullptr, nthreads);
    for (unsigned i = 0; i < nthreads; i++) {
        tables[i].resize(CX_SLOTS);
        arg[i] = CxThread{};
        arg[i].id = i;
        arg[i].steps = steps;
        arg[i].start = &start;
        arg[i].slots = &tables[i];
        if (pthread_create(&arg[i].tid, nullptr, cx_thread, &arg[i]) != 0)
            fail("pthread_create failed");
    }
    double t0 = 0, t1 = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(arg[i].tid, nullptr);
        if (i == 0 || arg[i].t0 < t0)
            t0 = arg[i].t0;
        if (arg[i].t1 > t1)
            t1 = arg[i].t1;
    }
    pthread_barrier_destroy(&start);
    print_result(2 * steps * nthreads, t1 - t0, "ok");
}

void run_cxx_mixed(double scale) { cx_run(scale, 1); }
void run_cxx_mixed_mt(double scale) { cx_run(scale, CX_MAX_THREADS); }

// ---- larson_sized -----------------------------------------------------------

void *ls_new(std::size_t n) { return ::operator new(n); }
void ls_delete_sized(void *p, std::size_t n) { ::operator delete(p, n); }
std::size_t ls_size_10_1000(uint64_t r) {
    return 10 + static_cast<std::size_t>(((r % 991) * ((r >> 20) % 991)) / 990);
}

void run_larson_sized(double scale) {
    static const larson_ops ops = {ls_new, ls_delete_sized, ls_size_10_1000};
    larson_run(&ops, scale);
}

const bench_workload workloads[] = {
    {"cxx_mixed", run_cxx_mixed, 0},
    {"cxx_mixed_mt", run_cxx_mixed_mt, 0},
    {"larson_sized", run_larson_sized, 0},
};

} // namespace

int main(int argc, char **argv) {
    return bench_main(argc, argv, workloads, sizeof workloads / sizeof workloads[0]);
}
