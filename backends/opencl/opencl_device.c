/*
 * opencl_device.c - device discovery and the kernel program for the OpenCL backend: picks the
 * first device of the first platform that has one, makes a context and an in-order queue, and
 * builds opencl_kernels.cl (embedded at build time) once. Built programs are cached as device
 * binaries under $XDG_CACHE_HOME/ptm/opencl/ (else ~/.cache/ptm/opencl/), keyed by a hash of
 * the device name, platform and driver versions and the source, so a second process skips
 * the compiler (PoCL's LLVM takes seconds). A cache entry that is short, fails its checksum
 * or is refused by the driver is ignored and rewritten. It does not run kernels.
 *
 * Cache entry layout: "PTMOCL1\0", u64 payload bytes, u64 FNV-1a of the payload, payload
 * (the CL_PROGRAM_BINARIES blob). Written to <name>.tmp and renamed, so readers never see a
 * half-written entry.
 */
#include "opencl_device.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opencl_kernels_src.h"
#include "ptm/ptm_base.h"

static const char *const kernel_names[OCL_K_COUNT] = {
    "k_matmul",    "k_unary",     "k_binary", "k_scale",   "k_norm",      "k_softmax",
    "k_embedding", "k_attention", "k_rope",   "k_convert", "k_copy_rows",
};

#define BUILD_OPTS  "-cl-std=CL1.2"
#define CACHE_MAGIC "PTMOCL1"

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ c[i]) * 0x100000001b3ull;
    }
    return h;
}

/* The cache directory, created if missing; 0 when there is none to use. */
static int cache_dir(char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(buf, cap, "%s/ptm/opencl", xdg);
    } else if (home != NULL && home[0] != '\0') {
        n = snprintf(buf, cap, "%s/.cache/ptm/opencl", home);
    } else {
        return 0;
    }
    if (n < 0 || (size_t)n >= cap) {
        return 0;
    }
    /* mkdir -p: each component in turn; existing ones are fine. */
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            int bad = mkdir(buf, 0755) != 0 && errno != EEXIST;
            *p = '/';
            if (bad) {
                return 0;
            }
        }
    }
    return mkdir(buf, 0755) == 0 || errno == EEXIST;
}

static void device_string(cl_device_id d, cl_device_info what, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, cap, buf, NULL) != CL_SUCCESS) {
        buf[0] = '\0';
    }
    buf[cap - 1] = '\0';
}

/* <dir>/<hash>.bin for this device and source; 0 when no cache directory. */
static int cache_path(struct ocl_state *s, cl_platform_id plat, char *path, size_t cap)
{
    char dir[1024], dev[256], drv[128], pver[256];
    if (!cache_dir(dir, sizeof dir)) {
        return 0;
    }
    device_string(s->device, CL_DEVICE_NAME, dev, sizeof dev);
    device_string(s->device, CL_DRIVER_VERSION, drv, sizeof drv);
    pver[0] = '\0';
    clGetPlatformInfo(plat, CL_PLATFORM_VERSION, sizeof pver, pver, NULL);
    pver[sizeof pver - 1] = '\0';
    uint64_t h = 0xcbf29ce484222325ull;
    const char *parts[] = {dev, "\n", drv, "\n", pver, "\n", BUILD_OPTS, "\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        h = fnv1a(h, parts[i], strlen(parts[i]));
    }
    h = fnv1a(h, ocl_kernels_src, sizeof ocl_kernels_src);
    int n = snprintf(path, cap, "%s/%016" PRIx64 ".bin", dir, h);
    return n > 0 && (size_t)n < cap;
}

/* The cached binary, checked; NULL when absent or corrupt. */
static unsigned char *cache_load(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char magic[8];
    uint64_t n = 0, sum = 0;
    unsigned char *bin = NULL;
    if (fread(magic, 1, 8, f) == 8 && memcmp(magic, CACHE_MAGIC, 8) == 0 &&
        fread(&n, 8, 1, f) == 1 && fread(&sum, 8, 1, f) == 1 && n > 0 && n < (1ull << 30) &&
        (bin = malloc((size_t)n)) != NULL) {
        if (fread(bin, 1, (size_t)n, f) != n || fnv1a(0xcbf29ce484222325ull, bin, n) != sum) {
            free(bin);
            bin = NULL;
        }
    }
    fclose(f);
    *bytes = (size_t)n;
    if (bin == NULL) {
        ptm_log(PTM_LOG_DEBUG, "opencl: %s: cache entry unusable; rebuilding", path);
    }
    return bin;
}

static void cache_store(struct ocl_state *s, const char *path)
{
    size_t n = 0;
    if (clGetProgramInfo(s->program, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, NULL) != CL_SUCCESS ||
        n == 0) {
        return;
    }
    unsigned char *bin = malloc(n);
    char tmp[1100];
    int len = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (bin == NULL || len < 0 || (size_t)len >= sizeof tmp ||
        clGetProgramInfo(s->program, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
        free(bin);
        return;
    }
    uint64_t n64 = n, sum = fnv1a(0xcbf29ce484222325ull, bin, n);
    FILE *f = fopen(tmp, "wb");
    int ok = f != NULL && fwrite(CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&n64, 8, 1, f) == 1 &&
             fwrite(&sum, 8, 1, f) == 1 && fwrite(bin, 1, n, f) == n;
    if (f != NULL && fclose(f) != 0) {
        ok = 0;
    }
    if (ok && rename(tmp, path) == 0) {
        ptm_log(PTM_LOG_DEBUG, "opencl: %s: program cached", path);
    } else {
        remove(tmp);
    }
    free(bin);
}

/* Build from binary; 1 on success. A refused binary is not an error: we compile instead. */
static int build_from_cache(struct ocl_state *s, const char *path)
{
    size_t n = 0;
    unsigned char *bin = cache_load(path, &n);
    if (bin == NULL) {
        return 0;
    }
    cl_int err, bin_st = CL_SUCCESS;
    const unsigned char *bins[1] = {bin};
    s->program = clCreateProgramWithBinary(s->context, 1, &s->device, &n, bins, &bin_st, &err);
    free(bin);
    if (err == CL_SUCCESS && bin_st == CL_SUCCESS &&
        clBuildProgram(s->program, 1, &s->device, BUILD_OPTS, NULL, NULL) == CL_SUCCESS) {
        ptm_log(PTM_LOG_DEBUG, "opencl: program from cache %s", path);
        s->from_cache = 1;
        return 1;
    }
    if (s->program != NULL) {
        clReleaseProgram(s->program);
        s->program = NULL;
    }
    ptm_log(PTM_LOG_DEBUG, "opencl: %s: cached binary refused; rebuilding", path);
    return 0;
}

static int build_from_source(struct ocl_state *s)
{
    const char *src = ocl_kernels_src;
    cl_int err;
    s->program = clCreateProgramWithSource(s->context, 1, &src, NULL, &err);
    if (err != CL_SUCCESS) {
        snprintf(s->why, sizeof s->why, "opencl: clCreateProgramWithSource failed (%d)", err);
        return 0;
    }
    err = clBuildProgram(s->program, 1, &s->device, BUILD_OPTS, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[2048] = "";
        clGetProgramBuildInfo(s->program, s->device, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
        log[sizeof log - 1] = '\0';
        snprintf(s->why, sizeof s->why, "opencl: kernel build failed (%d): %s", err, log);
        return 0;
    }
    ptm_log(PTM_LOG_DEBUG, "opencl: program built from source");
    return 1;
}

/* The first device of the first platform that has one; 0 with s->why set otherwise. */
static int find_device(struct ocl_state *s, cl_platform_id *plat)
{
    cl_platform_id plats[16];
    cl_uint n_plats = 0;
    cl_int err = clGetPlatformIDs(16, plats, &n_plats);
    if (err == CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && n_plats == 0)) {
        snprintf(s->why, sizeof s->why, "opencl: no platform (no ICD installed or none loads)");
        return 0;
    }
    if (err != CL_SUCCESS) {
        snprintf(s->why, sizeof s->why, "opencl: clGetPlatformIDs failed (%d)", err);
        return 0;
    }
    for (cl_uint p = 0; p < n_plats && p < 16; p++) {
        cl_uint n_dev = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 1, &s->device, &n_dev) == CL_SUCCESS &&
            n_dev > 0) {
            *plat = plats[p];
            return 1;
        }
    }
    s->device = NULL;
    snprintf(s->why, sizeof s->why, "opencl: %u platform(s) but no device", (unsigned)n_plats);
    return 0;
}

static void describe(struct ocl_state *s, cl_platform_id plat)
{
    char dev[96], pname[64], drv[48];
    device_string(s->device, CL_DEVICE_NAME, dev, sizeof dev);
    device_string(s->device, CL_DRIVER_VERSION, drv, sizeof drv);
    pname[0] = '\0';
    clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof pname, pname, NULL);
    pname[sizeof pname - 1] = '\0';
    snprintf(s->name, sizeof s->name, "%s (%s, driver %s)", dev, pname, drv);
    clGetDeviceInfo(s->device, CL_DEVICE_TYPE, sizeof s->type, &s->type, NULL);
    clGetDeviceInfo(s->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof s->max_wg, &s->max_wg, NULL);
}

static int make_kernels(struct ocl_state *s)
{
    for (int i = 0; i < OCL_K_COUNT; i++) {
        cl_int err;
        s->k[i] = clCreateKernel(s->program, kernel_names[i], &err);
        if (err != CL_SUCCESS) {
            snprintf(s->why, sizeof s->why, "opencl: kernel %s missing from program (%d)",
                     kernel_names[i], err);
            return 0;
        }
    }
    /* matmul (16 x 16 tiles), norm and softmax (rows) run 256-item work-groups. */
    const int big[] = {OCL_K_MATMUL, OCL_K_NORM, OCL_K_SOFTMAX};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        size_t wg = 0;
        clGetKernelWorkGroupInfo(s->k[big[i]], s->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg,
                                 NULL);
        if (wg < 256) {
            snprintf(s->why, sizeof s->why,
                     "opencl: %s: kernel %s allows work-groups of %zu, needs 256", s->name,
                     kernel_names[big[i]], wg);
            return 0;
        }
    }
    return 1;
}

void ocl_device_open(struct ocl_state *s)
{
    cl_platform_id plat = NULL;
    cl_int err;
    if (!find_device(s, &plat)) {
        return;
    }
    describe(s, plat);
    if (s->max_wg < 256) {
        snprintf(s->why, sizeof s->why, "opencl: %s: work-group size %zu below the 256 needed",
                 s->name, s->max_wg);
        s->device = NULL;
        return;
    }
    s->context = clCreateContext(NULL, 1, &s->device, NULL, NULL, &err);
    if (err == CL_SUCCESS) {
        s->queue = clCreateCommandQueue(s->context, s->device, 0, &err);
    }
    if (err != CL_SUCCESS) {
        snprintf(s->why, sizeof s->why, "opencl: %s: cannot create context or queue (%d)", s->name,
                 err);
        ocl_device_close(s);
        return;
    }
    char path[1100];
    int cached = cache_path(s, plat, path, sizeof path);
    if (!(cached && build_from_cache(s, path))) {
        if (!build_from_source(s)) {
            ocl_device_close(s);
            return;
        }
        if (cached) {
            cache_store(s, path);
        }
    }
    if (!make_kernels(s)) {
        ocl_device_close(s);
    }
}

void ocl_device_close(struct ocl_state *s)
{
    for (int i = 0; i < OCL_K_COUNT; i++) {
        if (s->k[i] != NULL) {
            clReleaseKernel(s->k[i]);
            s->k[i] = NULL;
        }
    }
    if (s->program != NULL) {
        clReleaseProgram(s->program);
    }
    if (s->queue != NULL) {
        clReleaseCommandQueue(s->queue);
    }
    if (s->context != NULL) {
        clReleaseContext(s->context);
    }
    s->program = NULL;
    s->queue = NULL;
    s->context = NULL;
    s->device = NULL;
}
