/*
 * opencl_device.h - the OpenCL backend's private state and its setup: the one device it
 * drives (the first device of the first platform that has one), its context and in-order
 * queue, and the kernel program, built once per process or loaded from the on-disk binary
 * cache (opencl_device.c). The ABI glue and kernel dispatch live in opencl_backend.c; nothing
 * here crosses the plugin ABI.
 */
#ifndef PTM_OPENCL_DEVICE_H
#define PTM_OPENCL_DEVICE_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

/* From cl_khr_icd (CL/cl_ext.h): what the ICD loader returns when no platform loads. */
#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif
#include <pthread.h>

/* The kernels of opencl_kernels.cl, in the order of ocl_kernel_names. */
enum {
    OCL_K_MATMUL,
    OCL_K_UNARY,
    OCL_K_BINARY,
    OCL_K_SCALE,
    OCL_K_NORM,
    OCL_K_SOFTMAX,
    OCL_K_EMBEDDING,
    OCL_K_ATTENTION,
    OCL_K_ROPE,
    OCL_K_CONVERT,
    OCL_K_COPY_ROWS,
    OCL_K_COUNT
};

struct ocl_state {
    cl_device_id device; /* NULL when no usable device: why says so */
    cl_device_type type;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
    cl_kernel k[OCL_K_COUNT];
    size_t max_wg;  /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    char name[160]; /* "<device> (<platform>, driver <version>)" */
    char why[240];  /* why there is no device, for probe */
    int from_cache; /* the program came from the binary cache */
    /* OpenCL kernel objects hold their arguments: one dispatch at a time. Made by the
     * backend's init, not by ocl_device_open. */
    pthread_mutex_t mu;
};

/*
 * ocl_device_open - find a device and make its context, queue, program and kernels. Never
 * fails hard: with no ICD, platform or device, or when the program does not build, s->device
 * is NULL and s->why says why (with the build log's first lines). s is zeroed by the caller.
 */
void ocl_device_open(struct ocl_state *s);

/* ocl_device_close - release what ocl_device_open made; safe on a half-opened state. */
void ocl_device_close(struct ocl_state *s);

#endif /* PTM_OPENCL_DEVICE_H */
