/*
 * cuda_device.c - device discovery, setup and memory for the CUDA backend: finds CUDA device
 * 0, checks that this build's kernels load on it, makes one non-blocking stream and a cuBLAS
 * handle bound to it, and provides device buffers, host<->device copies and the scratch area.
 * With no driver or no device it records why (for probe) and does nothing else, so a host
 * without a GPU pays one cudaGetDeviceCount. It runs no kernels.
 *
 * Buffers come from CUDA's stream-ordered allocator (cudaMallocAsync on our stream) where the
 * device supports it, with the pool told to keep freed memory: a forward pass allocates the
 * same activation sizes every call, and cudaMalloc/cudaFree would synchronise the device each
 * time. Allocation, copies, kernels and frees all run on the one stream, so a buffer freed
 * after the kernel that reads it is released only once that kernel is done. Copies wait for
 * the stream: write returns when the source has been read, read when the data has arrived.
 */
#include "cuda_device.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_kernels.h"

ptm_status cuda_fail(ptm_status st, const char *op, const char *call, cudaError_t err)
{
    (void)cudaGetLastError();
    return ptm_error_set(st, "cuda: %s: %s failed: %s (%s)", op, call, cudaGetErrorString(err),
                         cudaGetErrorName(err));
}

ptm_status cuda_blas_fail(const char *op, const char *call, cublasStatus_t err)
{
    return ptm_error_set(PTM_E_INTERNAL, "cuda: %s: %s failed: %s (%s)", op, call,
                         cuda_blas.status_string(err), cuda_blas.status_name(err));
}

struct cuda_blas_api cuda_blas;

#define CUDA_STR2(x) #x
#define CUDA_STR(x)  CUDA_STR2(x) /* expands cublas_v2.h's macros: cublasCreate_v2 */

/* Open cuBLAS of the major version this plugin was built with: by its soname (the loader's
 * search, LD_LIBRARY_PATH included), else from the toolkit it was built against. 0 with
 * s->why set when it or one of its calls is missing. */
static int blas_open(struct cuda_state *s)
{
    static const char *const names[] = {
        "libcublas.so." CUDA_STR(CUBLAS_VER_MAJOR),
        PTM_CUDA_LIBDIR "/libcublas.so." CUDA_STR(CUBLAS_VER_MAJOR),
    };
    void *lib = NULL;
    for (size_t i = 0; lib == NULL && i < sizeof names / sizeof names[0]; i++) {
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    }
    if (lib == NULL) {
        const char *e = dlerror();
        snprintf(s->why, sizeof s->why, "cuda: %s: cannot open %s: %s", s->name, names[0],
                 e ? e : "not found");
        return 0;
    }
    struct cuda_blas_api a;
    const char *missing = NULL;
#define CUDA_BLAS_SYM(field, fn)                                                                   \
    if ((*(void **)&a.field = dlsym(lib, CUDA_STR(fn))) == NULL && missing == NULL) {              \
        missing = CUDA_STR(fn);                                                                    \
    }
    CUDA_BLAS_SYM(create, cublasCreate)
    CUDA_BLAS_SYM(destroy, cublasDestroy)
    CUDA_BLAS_SYM(set_stream, cublasSetStream)
    CUDA_BLAS_SYM(set_math_mode, cublasSetMathMode)
    CUDA_BLAS_SYM(gemm_ex, cublasGemmEx)
    CUDA_BLAS_SYM(status_name, cublasGetStatusName)
    CUDA_BLAS_SYM(status_string, cublasGetStatusString)
#undef CUDA_BLAS_SYM
    if (missing != NULL) {
        snprintf(s->why, sizeof s->why, "cuda: %s: %s has no %s", s->name, names[0], missing);
        dlclose(lib);
        return 0;
    }
    cuda_blas = a; /* the library stays open for the process, as a linked one would */
    return 1;
}

/* Record why the device is unusable: "cuda: <subject>: <call> failed: <error>". */
static void set_why(struct cuda_state *s, const char *call, cudaError_t err)
{
    (void)cudaGetLastError();
    snprintf(s->why, sizeof s->why, "cuda: %s: %s failed: %s (%s)", s->name, call,
             cudaGetErrorString(err), cudaGetErrorName(err));
}

static cudaError_t dev_alloc(struct cuda_state *s, void **p, size_t bytes)
{
    return s->use_pool ? cudaMallocAsync(p, bytes, s->stream) : cudaMalloc(p, bytes);
}

static cudaError_t dev_free(struct cuda_state *s, void *p)
{
    return s->use_pool ? cudaFreeAsync(p, s->stream) : cudaFree(p);
}

/* The device's name and a short description; 0 with s->why set when it cannot be queried or
 * this build has no code for it. */
static int describe(struct cuda_state *s)
{
    struct cudaDeviceProp p;
    cudaError_t err = cudaGetDeviceProperties(&p, 0);
    if (err != cudaSuccess) {
        snprintf(s->name, sizeof s->name, "device 0");
        set_why(s, "cudaGetDeviceProperties", err);
        return 0;
    }
    int driver = 0;
    (void)cudaDriverGetVersion(&driver);
    snprintf(s->name, sizeof s->name, "%.100s (sm_%d%d, %d SMs, %.0f GiB, driver %d.%d)", p.name,
             p.major, p.minor, p.multiProcessorCount,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), driver / 1000,
             driver % 1000 / 10);
    s->n_sm = p.multiProcessorCount;
    err = cuda_k_probe();
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(s->why, sizeof s->why,
                 "cuda: %s: this build has no kernels for the device (built for sm_90): %s (%s)",
                 s->name, cudaGetErrorString(err), cudaGetErrorName(err));
        return 0;
    }
    return 1;
}

/* Keep freed memory in the default pool instead of returning it at each synchronisation. */
static void setup_pool(struct cuda_state *s)
{
    int supported = 0;
    cudaMemPool_t pool;
    uint64_t keep = UINT64_MAX;
    if (cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, 0) == cudaSuccess &&
        supported && cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess &&
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess) {
        s->use_pool = 1;
    }
    (void)cudaGetLastError();
    ptm_log(PTM_LOG_DEBUG, "cuda: %s: %s", s->name,
            s->use_pool ? "stream-ordered allocator" : "cudaMalloc (no memory pools)");
}

void cuda_device_open(struct cuda_state *s)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n <= 0) {
        (void)cudaGetLastError();
        if (err != cudaSuccess) {
            snprintf(s->why, sizeof s->why,
                     "cuda: no CUDA device: cudaGetDeviceCount failed: %s (%s)",
                     cudaGetErrorString(err), cudaGetErrorName(err));
        } else {
            snprintf(s->why, sizeof s->why, "cuda: no CUDA device: cudaGetDeviceCount found 0");
        }
        return;
    }
    snprintf(s->name, sizeof s->name, "device 0");
    if ((err = cudaSetDevice(0)) != cudaSuccess) {
        set_why(s, "cudaSetDevice", err);
        return;
    }
    if (!describe(s)) {
        return;
    }
    if ((err = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        set_why(s, "cudaStreamCreateWithFlags", err);
        s->stream = NULL;
        return;
    }
    setup_pool(s);
    if (!blas_open(s)) {
        cuda_device_close(s);
        return;
    }
    cublasStatus_t bst = cuda_blas.create(&s->blas);
    if (bst == CUBLAS_STATUS_SUCCESS) {
        bst = cuda_blas.set_stream(s->blas, s->stream);
    }
    /* Plain F32: no TF32 tensor-op shortcut, so results match the CPU's F32 GEMM. */
    if (bst == CUBLAS_STATUS_SUCCESS) {
        bst = cuda_blas.set_math_mode(s->blas, CUBLAS_DEFAULT_MATH);
    }
    if (bst != CUBLAS_STATUS_SUCCESS) {
        snprintf(s->why, sizeof s->why, "cuda: %s: cuBLAS setup failed: %s (%s)", s->name,
                 cuda_blas.status_string(bst), cuda_blas.status_name(bst));
        cuda_device_close(s);
        return;
    }
    s->n_devices = 1;
    ptm_log(PTM_LOG_DEBUG, "cuda: using %s", s->name);
}

void cuda_device_close(struct cuda_state *s)
{
    if (s->scratch != NULL) {
        (void)dev_free(s, s->scratch);
        s->scratch = NULL;
        s->scratch_bytes = 0;
    }
    if (s->stream != NULL) {
        (void)cudaStreamSynchronize(s->stream);
    }
    cudaMemPool_t pool;
    if (s->use_pool && cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
        (void)cudaMemPoolTrimTo(pool, 0);
    }
    if (s->blas != NULL) {
        (void)cuda_blas.destroy(s->blas);
        s->blas = NULL;
    }
    if (s->stream != NULL) {
        (void)cudaStreamDestroy(s->stream);
        s->stream = NULL;
    }
    (void)cudaGetLastError();
    s->n_devices = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Memory                                                                                      */

ptm_status cuda_scratch(struct cuda_state *s, const char *op, size_t bytes, void **out)
{
    *out = NULL;
    if (bytes > s->scratch_bytes) {
        size_t want = bytes > 2 * s->scratch_bytes ? bytes : 2 * s->scratch_bytes;
        void *p = NULL;
        cudaError_t err = dev_alloc(s, &p, want);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            return ptm_error_set(PTM_E_NOMEM, "cuda: %s: cannot allocate %zu bytes of scratch: %s",
                                 op, want, cudaGetErrorString(err));
        }
        if (s->scratch != NULL) {
            (void)dev_free(s, s->scratch);
        }
        s->scratch = p;
        s->scratch_bytes = want;
    }
    *out = s->scratch;
    return PTM_OK;
}

ptm_status cuda_buffer_alloc(void *ctx, int32_t dev, size_t bytes, void **out)
{
    struct cuda_state *s = ctx;
    *out = NULL;
    if (s->n_devices == 0 || dev != 0) {
        return ptm_error_set(PTM_E_NOT_FOUND, "cuda: no device %d", (int)dev);
    }
    struct cuda_buf *b = malloc(sizeof *b);
    if (b == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cuda: out of memory");
    }
    b->ptr = NULL;
    b->bytes = bytes;
    /* Empty tensors still get a distinct, valid pointer. */
    cudaError_t err = dev_alloc(s, &b->ptr, bytes ? bytes : 256);
    if (err != cudaSuccess) {
        free(b);
        (void)cudaGetLastError();
        return ptm_error_set(PTM_E_NOMEM, "cuda: cannot allocate %zu bytes on %s: %s (%s)", bytes,
                             s->name, cudaGetErrorString(err), cudaGetErrorName(err));
    }
    *out = b;
    return PTM_OK;
}

void cuda_buffer_free(void *ctx, void *buf)
{
    struct cuda_buf *b = buf;
    if (b != NULL) {
        cudaError_t err = dev_free(ctx, b->ptr);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            ptm_log(PTM_LOG_WARN, "cuda: freeing %zu bytes failed: %s", b->bytes,
                    cudaGetErrorString(err));
        }
        free(b);
    }
}

static ptm_status copy(struct cuda_state *s, const char *what, struct cuda_buf *b, uint64_t off,
                       void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    if (off > b->bytes || n > b->bytes - off) {
        return ptm_error_set(PTM_E_RANGE, "cuda: %s of %zu bytes at %llu past a %zu-byte buffer",
                             what, n, (unsigned long long)off, b->bytes);
    }
    if (n == 0) {
        return PTM_OK;
    }
    cudaError_t err = cudaMemcpyAsync(dst, src, n, kind, s->stream);
    if (err != cudaSuccess) {
        return cuda_fail(PTM_E_IO, what, "cudaMemcpyAsync", err);
    }
    err = cudaStreamSynchronize(s->stream);
    return err == cudaSuccess ? PTM_OK : cuda_fail(PTM_E_IO, what, "cudaStreamSynchronize", err);
}

ptm_status cuda_write(void *ctx, void *buf, uint64_t off, const void *src, size_t n)
{
    struct cuda_buf *b = buf;
    return copy(ctx, "write", b, off, (char *)b->ptr + off, src, n, cudaMemcpyHostToDevice);
}

ptm_status cuda_read(void *ctx, void *buf, uint64_t off, void *dst, size_t n)
{
    struct cuda_buf *b = buf;
    return copy(ctx, "read", b, off, dst, (const char *)b->ptr + off, n, cudaMemcpyDeviceToHost);
}

ptm_status cuda_sync(void *ctx)
{
    struct cuda_state *s = ctx;
    cudaError_t err = cudaStreamSynchronize(s->stream);
    return err == cudaSuccess ? PTM_OK
                              : cuda_fail(PTM_E_INTERNAL, "sync", "cudaStreamSynchronize", err);
}
