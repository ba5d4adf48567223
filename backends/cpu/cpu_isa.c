/*
 * cpu_isa.c - which instruction set the CPU kernels may use: cpuid through
 * __builtin_cpu_supports, capped by PTM_CPU_ISA=scalar|avx2|avx512 so tests and users can force
 * a slower path. It keeps no state: callers store the answer in their cpu_ctx.
 */
#include "cpu_kernels.h"

#include <stdlib.h>
#include <string.h>

int32_t cpu_isa_best(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma")) {
        return CPU_ISA_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        return CPU_ISA_AVX2;
    }
#endif
    return CPU_ISA_SCALAR;
}

int cpu_isa_has_bf16(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && __GNUC__ >= 12
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && cpu_isa_best() == CPU_ISA_AVX512;
#else
    return 0;
#endif
}

int cpu_isa_has_vnni(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && cpu_isa_best() == CPU_ISA_AVX512;
#else
    return 0;
#endif
}

int32_t cpu_isa_detect(void)
{
    int32_t best = cpu_isa_best();
    const char *env = getenv("PTM_CPU_ISA");
    if (!env || !*env) {
        return best;
    }
    int32_t want = -1;
    if (strcmp(env, "scalar") == 0) {
        want = CPU_ISA_SCALAR;
    } else if (strcmp(env, "avx2") == 0) {
        want = CPU_ISA_AVX2;
    } else if (strcmp(env, "avx512") == 0) {
        want = CPU_ISA_AVX512;
    }
    if (want < 0) {
        ptm_log(PTM_LOG_WARN, "cpu: PTM_CPU_ISA=%s: expected scalar, avx2 or avx512; using %s", env,
                cpu_isa_name(best));
        return best;
    }
    if (want > best) {
        ptm_log(PTM_LOG_WARN, "cpu: PTM_CPU_ISA=%s: this CPU only has %s; using it", env,
                cpu_isa_name(best));
        return best;
    }
    return want;
}

const char *cpu_isa_name(int32_t isa)
{
    switch (isa) {
    case CPU_ISA_AVX512:
        return "avx512";
    case CPU_ISA_AVX2:
        return "avx2";
    default:
        return "scalar";
    }
}
