/*
 * cuda_device.h - the CUDA backend's private state and its memory: the one device it drives
 * (CUDA device 0 of what CUDA_VISIBLE_DEVICES leaves), the stream every copy and kernel runs
 * on in order, the cuBLAS handle, device buffers, host<->device copies and a grow-only scratch
 * area (cuda_device.c). The ABI table and kernel dispatch live in cuda_backend.c; the kernels
 * in the .cu files (cuda_kernels.h). Nothing here crosses the plugin ABI.
 */
#ifndef PTM_CUDA_DEVICE_H
#define PTM_CUDA_DEVICE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "ptm/ptm_base.h"

struct cuda_state {
    int32_t n_devices; /* 1 when device 0 is usable, else 0 and why says why */
    int32_t n_sm;      /* multiprocessors, for sizing split-K attention */
    int use_pool;      /* buffers come from the stream-ordered allocator */
    cudaStream_t stream;
    cublasHandle_t blas;
    char name[192]; /* "<device> (sm_XY, N SMs, M GiB)" */
    char why[320];  /* why there is no device, for probe */
    /* The scratch area and the cuBLAS handle serve one op at a time. Work on the one stream
     * is ordered, so the lock need only cover enqueueing, not execution. */
    pthread_mutex_t mu;
    void *scratch;
    size_t scratch_bytes;
};

/* A device buffer. */
struct cuda_buf {
    void *ptr;
    size_t bytes;
};

/*
 * cuda_device_open - find device 0 and make its stream and cuBLAS handle. Never fails hard:
 * with no driver, no device, a device this build has no kernels for, or a failed setup step,
 * s->n_devices is 0 and s->why says why, naming the CUDA call and its error string. s is
 * zeroed by the caller; the mutex is the caller's too.
 */
void cuda_device_open(struct cuda_state *s);

/* cuda_device_close - release what cuda_device_open made; safe on a half-opened state. */
void cuda_device_close(struct cuda_state *s);

/* cuda_fail - ptm_error_set(st, "cuda: <op>: <call> failed: <string> (<name>)") for a CUDA
 * runtime error; clears CUDA's last-error slot so the next call starts clean. */
ptm_status cuda_fail(ptm_status st, const char *op, const char *call, cudaError_t err);

/* cuda_blas_fail - the same for a cuBLAS status. */
ptm_status cuda_blas_fail(const char *op, const char *call, cublasStatus_t err);

/*
 * cuBLAS is opened when a device is found, not linked: a plugin linked to libcublas and
 * libcublasLt maps and relocates them in every process that loads it, ~95 MB of private
 * memory and ~120 ms on a host without a GPU. These are the calls the backend makes; the
 * pointers are set by cuda_device_open once it has a device, and stay for the process.
 */
struct cuda_blas_api {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t);
    __typeof__(cublasGemmEx) *gemm_ex;
    const char *(*status_name)(cublasStatus_t);
    const char *(*status_string)(cublasStatus_t);
};
extern struct cuda_blas_api cuda_blas;

/*
 * cuda_scratch - a device area of at least bytes, valid until the next cuda_scratch call.
 * The caller holds s->mu from this call until its last use of the area is enqueued. Grows by
 * replacing the area (the old one is freed in stream order, after its last reader).
 */
ptm_status cuda_scratch(struct cuda_state *s, const char *op, size_t bytes, void **out);

/* The memory half of the backend ABI (ptm_backend.h). */
ptm_status cuda_buffer_alloc(void *ctx, int32_t dev, size_t bytes, void **out);
void cuda_buffer_free(void *ctx, void *buf);
ptm_status cuda_write(void *ctx, void *buf, uint64_t off, const void *src, size_t n);
ptm_status cuda_read(void *ctx, void *buf, uint64_t off, void *dst, size_t n);
ptm_status cuda_sync(void *ctx);

#endif /* PTM_CUDA_DEVICE_H */
