/*
 * ptm_base.h - what every ptm header shares: the ABI version, export macro, status codes,
 * the per-thread error message and the logger.
 *
 * Hosts, architecture plugins and backend plugins all include this file (the other public
 * headers include it for them). It holds declarations only: no inline logic that would pin
 * behaviour into a third party's binary.
 */
#ifndef PTM_BASE_H
#define PTM_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PTM_API                      __attribute__((visibility("default")))
#define PTM_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

/* Plugin ABI. A plugin built for major M minor n loads into a host of major M minor >= n. */
#define PTM_ABI_MAJOR 1
#define PTM_ABI_MINOR 1

#define PTM_VERSION_STRING "0.1.0"

/* PTM_HAS(p, T, m): whether ABI struct p of type T, as its builder sized it, has member m. */
#define PTM_HAS(p, T, m) ((p)->struct_size >= offsetof(T, m) + sizeof(((T *)0)->m))

/*
 * Status codes. Append only: codes are never renumbered or removed, because plugins built
 * against an older SDK return them and hosts compare them.
 */
#define PTM_STATUS_LIST(X)                                                                         \
    X(PTM_OK, 0, "success")                                                                        \
    X(PTM_E_INVAL, 1, "invalid argument")                                                          \
    X(PTM_E_NOMEM, 2, "out of memory")                                                             \
    X(PTM_E_IO, 3, "input/output error")                                                           \
    X(PTM_E_FORMAT, 4, "malformed input file")                                                     \
    X(PTM_E_ABI, 5, "incompatible plugin")                                                         \
    X(PTM_E_NOT_FOUND, 6, "not found")                                                             \
    X(PTM_E_EXISTS, 7, "already exists")                                                           \
    X(PTM_E_UNSUPPORTED, 8, "not supported")                                                       \
    X(PTM_E_NETWORK, 9, "network error")                                                           \
    X(PTM_E_PLUGIN, 10, "plugin failed")                                                           \
    X(PTM_E_BUSY, 11, "resource busy")                                                             \
    X(PTM_E_TYPE, 12, "wrong type")                                                                \
    X(PTM_E_RANGE, 13, "value out of range")                                                       \
    X(PTM_E_INTERNAL, 14, "internal error") /* append only */

typedef enum {
#define PTM_STATUS_ENUM_(name, code, str) name = code,
    PTM_STATUS_LIST(PTM_STATUS_ENUM_)
#undef PTM_STATUS_ENUM_
} ptm_status;

/* ptm_status_name - the code's identifier ("PTM_E_FORMAT"); "PTM_E_UNKNOWN" for others. */
PTM_API const char *ptm_status_name(ptm_status st);

/* ptm_status_str - a short description ("malformed input file"); never NULL. */
PTM_API const char *ptm_status_str(ptm_status st);

/*
 * ptm_last_error - this thread's message for the last failed ptm_ call, "" if none.
 *
 * The message names the subject (file, tensor, key, URL), the fault, and the value found and
 * expected. The text is borrowed: it stays valid until this thread's next ptm_ call, which
 * clears it. Thread safe: each thread has its own.
 */
PTM_API const char *ptm_last_error(void);

/*
 * ptm_error_set - record a failure for ptm_last_error() and return st.
 *
 * For plugins and the runtime alike. Only the first failure since the host's call began is
 * kept, so the innermost, most exact cause survives; later calls return st unchanged.
 */
PTM_API ptm_status ptm_error_set(ptm_status st, const char *fmt, ...) PTM_PRINTF(2, 3);

/* Log levels, in increasing severity. */
enum {
    PTM_LOG_DEBUG = 0,
    PTM_LOG_INFO = 1,
    PTM_LOG_WARN = 2,
    PTM_LOG_ERROR = 3,
    PTM_LOG_NONE = 4,
};

/* A host's log sink: level, one message without newline, and the user pointer given. */
typedef void (*ptm_log_fn)(int32_t level, const char *msg, void *user);

/*
 * ptm_log_set - send log messages to fn (NULL restores the default: stderr).
 *
 * The level threshold is PTM_LOG from the environment (debug|info|warn|error|none), default
 * warn, or what ptm_log_set_level set. Call before other threads log; fn may be called from
 * any thread and must be thread safe.
 */
PTM_API void ptm_log_set(ptm_log_fn fn, void *user);

/* ptm_log_set_level - set the threshold; overrides PTM_LOG. */
PTM_API void ptm_log_set_level(int32_t level);

/* ptm_log_get_level - the threshold in force. */
PTM_API int32_t ptm_log_get_level(void);

/*
 * ptm_log - emit one message at level. Format: "<area>: <subject>: <what happened>", lower
 * case, no trailing newline. Thread safe.
 */
PTM_API void ptm_log(int32_t level, const char *fmt, ...) PTM_PRINTF(2, 3);

/* ptm_free - release a heap string or buffer that a ptm_ function said to free with this. */
PTM_API void ptm_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* PTM_BASE_H */
