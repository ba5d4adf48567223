/*
 * watch.c - hot drop: a libuv loop on a background thread watches one directory and loads
 * any .so that appears in it, so a plugin copied or renamed in while a host runs is
 * registered without a restart.
 *
 * A copy shows up as several change events while the file is still being written, so each
 * name is loaded only after it has been quiet for SETTLE_MS; a load that still fails is
 * retried a few times (a slow copy) before the refusal is reported to the host's callback.
 * The loop thread owns every libuv handle; other threads talk to it through one uv_async.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "error.h"
#include "log.h"
#include "ptm/ptm.h"

#define SETTLE_MS   150
#define MAX_RETRIES 4 /* about 1 s in all: a copy that slow is retried by the next event */

struct pending {
    uv_timer_t timer;
    struct watcher *w;
    char name[NAME_MAX + 1];
    int tries;
    struct pending *next;
};

struct watcher {
    uv_loop_t loop;
    uv_fs_event_t event;
    uv_async_t stop;
    pthread_t thread;
    char dir[PATH_MAX];
    ptm_watch_fn cb;
    void *user;
    struct pending *pending;
};

static pthread_mutex_t watch_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct watcher *current;

static void notify(struct watcher *w, ptm_status st, const char *name, const char *path)
{
    if (w->cb != NULL) {
        w->cb(st, name, path, w->user);
    }
}

static void pending_closed(uv_handle_t *h)
{
    ptm__free(h->data);
}

static void pending_drop(struct pending *p)
{
    struct pending **pp = &p->w->pending;
    while (*pp != p) {
        pp = &(*pp)->next;
    }
    *pp = p->next;
    uv_close((uv_handle_t *)&p->timer, pending_closed);
}

static void on_settled(uv_timer_t *t)
{
    struct pending *p = t->data;
    struct watcher *w = p->w;
    char path[PATH_MAX + NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", w->dir, p->name);
    size_t before = ptm_plugin_count();
    ptm_status st = ptm_plugin_load(path);
    if (st == PTM_E_IO && ++p->tries < MAX_RETRIES) {
        uv_timer_start(&p->timer, on_settled, SETTLE_MS * (uint64_t)p->tries, 0);
        return;
    }
    if (st != PTM_OK) {
        PTM_WARN("watch: %s; skipped", ptm_last_error());
        notify(w, st, p->name, path);
    } else if (ptm_plugin_count() > before) {
        struct ptm_plugin_info info = {.struct_size = sizeof info};
        ptm_plugin_at(ptm_plugin_count() - 1, &info);
        notify(w, PTM_OK, info.name, path);
    }
    pending_drop(p);
}

static void on_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    struct watcher *w = h->data;
    size_t n = name != NULL ? strlen(name) : 0;
    if (status < 0 || n < 4 || n > NAME_MAX || name[0] == '.' || strcmp(name + n - 3, ".so")) {
        return;
    }
    struct pending *p = w->pending;
    while (p != NULL && strcmp(p->name, name) != 0) {
        p = p->next;
    }
    if (p == NULL) {
        p = ptm__calloc(1, sizeof *p);
        if (p == NULL) {
            PTM_ERROR("watch: %s/%s: out of memory; not loaded", w->dir, name);
            return;
        }
        memcpy(p->name, name, n + 1);
        p->w = w;
        uv_timer_init(&w->loop, &p->timer);
        p->timer.data = p;
        p->next = w->pending;
        w->pending = p;
    }
    p->tries = 0;
    uv_timer_start(&p->timer, on_settled, SETTLE_MS, 0); /* restart: wait for quiet */
}

static void close_all(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        uv_close(h, h->type == UV_TIMER ? pending_closed : NULL);
    }
}

static void on_stop(uv_async_t *a)
{
    struct watcher *w = a->data;
    w->pending = NULL;
    uv_walk(&w->loop, close_all, NULL);
}

static void *watch_thread(void *arg)
{
    struct watcher *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

ptm_status ptm_runtime_watch(const char *dir, ptm_watch_fn cb, void *user)
{
    ptm__error_clear();
    if (dir == NULL || strlen(dir) >= PATH_MAX) {
        return ptm__fail(PTM_E_INVAL, "ptm_runtime_watch: directory is NULL or too long");
    }
    pthread_mutex_lock(&watch_mutex);
    ptm_status st = PTM_OK;
    struct watcher *w = NULL;
    if (current != NULL) {
        st = ptm__fail(PTM_E_BUSY, "%s: cannot watch: %s is already watched", dir, current->dir);
    } else if ((w = ptm__calloc(1, sizeof *w)) == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", dir);
    }
    int rc = 0;
    if (st == PTM_OK) {
        snprintf(w->dir, sizeof w->dir, "%s", dir);
        w->cb = cb;
        w->user = user;
        rc = uv_loop_init(&w->loop);
        if (rc == 0) {
            uv_fs_event_init(&w->loop, &w->event);
            uv_async_init(&w->loop, &w->stop, on_stop);
            w->event.data = w;
            w->stop.data = w;
            rc = uv_fs_event_start(&w->event, on_event, dir, 0);
        }
        if (rc == 0) {
            rc = -pthread_create(&w->thread, NULL, watch_thread, w); /* errno, as libuv codes */
        }
        if (rc != 0) {
            st = ptm__fail(PTM_E_IO, "%s: cannot watch: %s", dir, uv_strerror(rc));
            uv_walk(&w->loop, close_all, NULL);
            uv_run(&w->loop, UV_RUN_DEFAULT);
            uv_loop_close(&w->loop);
            ptm__free(w);
            w = NULL;
        }
    }
    current = w;
    pthread_mutex_unlock(&watch_mutex);
    if (st == PTM_OK) {
        /* Files already there count as dropped in before the watch began. */
        uv_dirent_t ent;
        uv_fs_t req;
        if (uv_fs_scandir(NULL, &req, dir, 0, NULL) >= 0) {
            while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
                size_t n = strlen(ent.name);
                if (n > 3 && ent.name[0] != '.' && strcmp(ent.name + n - 3, ".so") == 0) {
                    char path[PATH_MAX + NAME_MAX + 2];
                    snprintf(path, sizeof path, "%s/%s", dir, ent.name);
                    if (ptm_plugin_load(path) != PTM_OK) {
                        PTM_WARN("watch: %s; skipped", ptm_last_error());
                    }
                }
            }
        }
        uv_fs_req_cleanup(&req);
        ptm__error_clear();
    }
    return st;
}

void ptm_runtime_unwatch(void)
{
    pthread_mutex_lock(&watch_mutex);
    struct watcher *w = current;
    current = NULL;
    pthread_mutex_unlock(&watch_mutex);
    if (w == NULL) {
        return;
    }
    uv_async_send(&w->stop);
    pthread_join(w->thread, NULL);
    uv_loop_close(&w->loop);
    ptm__free(w);
}
