/*
 * The output relay of a run whose caller passed its descriptors (Linux): one thread per stream copies the job's
 * output pipe to the caller's descriptor AND to the run's log, in the kernel, so no byte crosses JavaScript:
 *
 *   job ──pipe P──▶ tee(2) ──▶ pipe Q ──splice(2)──▶ output.log (explicit offsets, shared by both streams)
 *                      └─────── splice(2) P ──▶ caller's fd (a pipe, a file, a socket)
 *
 *   relayStart({ logFd, streams: [{ src, dest }, ...] }, onDone) -> handle. From then on the relay owns src, dest and
 *       logFd (it closes them); on a throw the caller still does. onDone(results, logError) is called once, from the
 *       event loop, when every stream has ended: results[i] = { delivered, logged, mode, destGone, error }.
 *   relayPending(handle) -> bytes waiting in the job's pipes (FIONREAD): the daemon tells a slow caller (bytes pending)
 *       from a pipe held open by an escaped process (nothing pending, no EOF).
 *   relayCancel(handle) -> stop waiting on slow callers: what is still in the job's pipe goes to the log only, then
 *       each stream ends. Safe to call at any time, any number of times.
 *
 * Why these rules:
 * - Backpressure is the kernel's: a caller that stops reading fills its pipe, the splice waits, P fills and the job
 *   blocks in write(2). The daemon's memory does not move (no buffer grows anywhere).
 * - A caller's descriptor that cannot be spliced to (a terminal; a file opened O_APPEND) gets read(2)+write(2) from
 *   this thread instead ("copy" mode): still native, still off the event loop.
 * - The caller gone (EPIPE): the job's pipe is closed, so the job's next write fails exactly as it would have
 *   writing to the caller itself (SIGPIPE / EPIPE, e.g. `lockd run -- yes | head -1` ends).
 * - The log is written with pwrite-like explicit offsets (splice with off_out) under one mutex, so both streams
 *   append to one file in the order their chunks were teed, without O_APPEND (splice refuses O_APPEND files).
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fdpass.h"

#define RELAY_CHUNK (1 << 20)
#define COPY_BUF (64 * 1024)
#define MAX_STREAMS 2

#define NAPI_OK(call)                   \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

typedef struct relay relay;

typedef struct {
  relay *r;
  int src;  /* the job's output pipe (read end) */
  int dest; /* the caller's descriptor */
  int q_r, q_w;
  double delivered, logged;
  int err;
  const char *where;
  bool dest_gone, copy_mode;
  char *buf;
} stream;

struct relay {
  pthread_mutex_t mu;
  int log_fd;
  off_t log_off;
  int log_err;
  int cancel_r, cancel_w;
  int nstreams;
  int running;
  int owners; /* event-loop thread only: the JS handle and the done delivery */
  napi_threadsafe_function done;
  stream s[MAX_STREAMS];
};

enum { DELIVERED, CANCELLED, DEST_GONE, FAILED };

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* 1: fd is ready (or in error: the next call says which), 0: cancelled, -1: poll failed. */
static int wait_ready(int fd, short events, int cancel_r) {
  struct pollfd p[2] = {{fd, events, 0}, {cancel_r, POLLIN, 0}};
  for (;;) {
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (p[1].revents) return 0;
    if (p[0].revents) return 1;
  }
}

/* Read and drop n bytes (the log failed: the job's output still has to be consumed). */
static void discard(int fd, char *buf, size_t n) {
  while (n > 0) {
    ssize_t k = read(fd, buf, n < COPY_BUF ? n : COPY_BUF);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return;
    n -= (size_t)k;
  }
}

/* Move n bytes from Q to the log at the shared offset. */
static void log_copy(stream *s, size_t n) {
  relay *r = s->r;
  pthread_mutex_lock(&r->mu);
  while (n > 0 && r->log_err == 0) {
    ssize_t k = splice(s->q_r, NULL, r->log_fd, &r->log_off, n, SPLICE_F_MOVE);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      r->log_err = k < 0 ? errno : EIO;
      break;
    }
    n -= (size_t)k;
    s->logged += (double)k;
  }
  pthread_mutex_unlock(&r->mu);
  if (n > 0) discard(s->q_r, s->buf, n);
}

/* What is left in the job's pipe, to the log only (cancelled: the caller is not waited for any more). */
static void drain_to_log(stream *s) {
  relay *r = s->r;
  pthread_mutex_lock(&r->mu);
  while (r->log_err == 0 && s->src >= 0) {
    ssize_t k = splice(s->src, NULL, r->log_fd, &r->log_off, RELAY_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break; /* EOF, or nothing more right now (EAGAIN) */
    s->logged += (double)k;
  }
  pthread_mutex_unlock(&r->mu);
}

static bool gone(int err) { return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == EIO; }

/* Write all of buf to the caller's fd (copy mode), waiting for room; CANCELLED leaves the rest unwritten. */
static int write_all(stream *s, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t k = write(s->dest, buf, n);
    if (k >= 0) {
      buf += k;
      n -= (size_t)k;
      s->delivered += (double)k;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int w = wait_ready(s->dest, POLLOUT, s->r->cancel_r);
      if (w == 0) return CANCELLED;
      if (w < 0) {
        s->err = errno;
        s->where = "poll";
        return FAILED;
      }
      continue;
    }
    if (gone(errno)) {
      s->dest_gone = true;
      return DEST_GONE;
    }
    s->err = errno;
    s->where = "write";
    return FAILED;
  }
  return DELIVERED;
}

/* Consume n bytes (already teed, so present) from the job's pipe into the caller's fd. */
static int deliver(stream *s, size_t n) {
  while (n > 0) {
    if (s->copy_mode) {
      ssize_t got = read(s->src, s->buf, n < COPY_BUF ? n : COPY_BUF);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        s->err = got < 0 ? errno : EIO;
        s->where = "read";
        return FAILED;
      }
      int w = write_all(s, s->buf, (size_t)got);
      if (w != DELIVERED) return w;
      n -= (size_t)got;
      continue;
    }
    ssize_t k = splice(s->src, NULL, s->dest, NULL, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (k > 0) {
      n -= (size_t)k;
      s->delivered += (double)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EINVAL) {
      /* A terminal, an O_APPEND file, anything without splice support: copy through this thread instead. */
      s->copy_mode = true;
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_ready(s->dest, POLLOUT, s->r->cancel_r);
      if (w == 0) return CANCELLED;
      if (w < 0) {
        s->err = errno;
        s->where = "poll";
        return FAILED;
      }
      continue;
    }
    if (k < 0 && gone(errno)) {
      s->dest_gone = true;
      return DEST_GONE;
    }
    s->err = k < 0 ? errno : EIO;
    s->where = "splice";
    return FAILED;
  }
  return DELIVERED;
}

static void *stream_main(void *arg) {
  stream *s = arg;
  relay *r = s->r;
  for (;;) {
    ssize_t n = tee(s->src, s->q_w, s->copy_mode ? COPY_BUF : RELAY_CHUNK, SPLICE_F_NONBLOCK);
    if (n == 0) break; /* EOF: every writer (the job and its whole tree) has closed the pipe */
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        int w = wait_ready(s->src, POLLIN, r->cancel_r);
        if (w == 0) {
          drain_to_log(s);
          break;
        }
        if (w > 0) continue;
      }
      s->err = errno;
      s->where = "tee";
      break;
    }
    /* The log first: it never waits on the caller, so output.log (and `lockd logs -f`) is never behind what the
       caller has seen, even while the caller is not reading. */
    log_copy(s, (size_t)n);
    int d = deliver(s, (size_t)n);
    if (d == CANCELLED) {
      drain_to_log(s);
      break;
    }
    if (d == DEST_GONE) break; /* closing src below: the job's next write sees EPIPE, as writing to the caller would */
    if (d == FAILED) break;
  }
  close_fd(&s->dest);
  close_fd(&s->q_r);
  close_fd(&s->q_w);
  pthread_mutex_lock(&r->mu);
  close_fd(&s->src);
  bool last = --r->running == 0;
  pthread_mutex_unlock(&r->mu);
  if (last) {
    close_fd(&r->log_fd);
    /* Copied first: once queued, the event loop may deliver it and free r before this thread goes on. */
    napi_threadsafe_function done = r->done;
    napi_call_threadsafe_function(done, r, napi_tsfn_blocking);
    napi_release_threadsafe_function(done, napi_tsfn_release);
  }
  return NULL;
}

static void relay_free(relay *r) {
  for (int i = 0; i < r->nstreams; i++) free(r->s[i].buf);
  close_fd(&r->cancel_r);
  close_fd(&r->cancel_w);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static void relay_release(relay *r) {
  if (--r->owners == 0) relay_free(r);
}

static void on_handle_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_release((relay *)data);
}

static napi_value num(napi_env env, double v) {
  napi_value out;
  return napi_create_double(env, v, &out) == napi_ok ? out : NULL;
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  relay *r = data;
  if (env != NULL && js_cb != NULL) {
    napi_value results, argv[2], recv, ret;
    bool ok = napi_create_array_with_length(env, (size_t)r->nstreams, &results) == napi_ok;
    for (int i = 0; ok && i < r->nstreams; i++) {
      stream *s = &r->s[i];
      napi_value o, v;
      ok = napi_create_object(env, &o) == napi_ok;
      if (ok) napi_set_named_property(env, o, "delivered", num(env, s->delivered));
      if (ok) napi_set_named_property(env, o, "logged", num(env, s->logged));
      if (ok && napi_create_string_utf8(env, s->copy_mode ? "copy" : "splice", NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, o, "mode", v);
      if (ok && napi_get_boolean(env, s->dest_gone, &v) == napi_ok) napi_set_named_property(env, o, "destGone", v);
      if (ok && s->err) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: %s", s->where ? s->where : "relay", strerror(s->err));
        if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, o, "error", v);
      } else if (ok && napi_get_null(env, &v) == napi_ok) {
        napi_set_named_property(env, o, "error", v);
      }
      if (ok) ok = napi_set_element(env, results, (uint32_t)i, o) == napi_ok;
    }
    if (ok) {
      argv[0] = results;
      if (r->log_err) napi_create_string_utf8(env, strerror(r->log_err), NAPI_AUTO_LENGTH, &argv[1]);
      else napi_get_null(env, &argv[1]);
      if (napi_get_global(env, &recv) == napi_ok && napi_call_function(env, recv, js_cb, 2, argv, &ret) == napi_pending_exception) {
        napi_value exc;
        if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
      }
    }
  }
  relay_release(r);
}

static bool get_int_prop(napi_env env, napi_value obj, const char *name, int32_t *out) {
  napi_value v;
  return napi_get_named_property(env, obj, name, &v) == napi_ok && napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value RelayStart(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t1 = napi_undefined;
  napi_value streams = NULL;
  bool is_array = false;
  uint32_t n = 0;
  int32_t log_fd = -1;
  if (argc < 2 || napi_typeof(env, argv[1], &t1) != napi_ok || t1 != napi_function || !get_int_prop(env, argv[0], "logFd", &log_fd) || log_fd < 0 ||
      napi_get_named_property(env, argv[0], "streams", &streams) != napi_ok || napi_is_array(env, streams, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, streams, &n) != napi_ok || n < 1 || n > MAX_STREAMS) {
    napi_throw_type_error(env, "EINVAL", "relayStart({ logFd, streams: [{ src, dest }] (1 or 2) }, onDone)");
    return NULL;
  }
  relay *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_throw_error(env, "ENOMEM", "relayStart: out of memory");
    return NULL;
  }
  pthread_mutex_init(&r->mu, NULL);
  r->log_fd = log_fd;
  r->cancel_r = r->cancel_w = -1;
  r->nstreams = (int)n;
  const char *fail = NULL;
  int fail_errno = 0;
  for (uint32_t i = 0; i < n; i++) {
    stream *s = &r->s[i];
    s->r = r;
    s->q_r = s->q_w = -1;
    napi_value e;
    int32_t src = -1, dest = -1;
    if (napi_get_element(env, streams, i, &e) != napi_ok || !get_int_prop(env, e, "src", &src) || !get_int_prop(env, e, "dest", &dest) || src < 0 || dest < 0) {
      for (uint32_t j = 0; j < i; j++) {
        close_fd(&r->s[j].q_r);
        close_fd(&r->s[j].q_w);
      }
      relay_free(r);
      napi_throw_type_error(env, "EINVAL", "relayStart: every stream needs src and dest descriptors");
      return NULL;
    }
    s->src = src;
    s->dest = dest;
  }
  off_t off = lseek(log_fd, 0, SEEK_CUR);
  r->log_off = off < 0 ? 0 : off;
  int cancel[2];
  if (pipe2(cancel, O_CLOEXEC) < 0) {
    fail = "pipe2";
    fail_errno = errno;
  } else {
    r->cancel_r = cancel[0];
    r->cancel_w = cancel[1];
  }
  for (int i = 0; fail == NULL && i < r->nstreams; i++) {
    stream *s = &r->s[i];
    int q[2];
    s->buf = malloc(COPY_BUF);
    if (s->buf == NULL || pipe2(q, O_CLOEXEC) < 0) {
      fail = s->buf == NULL ? "malloc" : "pipe2";
      fail_errno = s->buf == NULL ? ENOMEM : errno;
      break;
    }
    s->q_r = q[0];
    s->q_w = q[1];
    /* Bigger pipes, fewer wake-ups (1 MiB is the unprivileged maximum by default; smaller is fine too). */
    fcntl(s->src, F_SETPIPE_SZ, RELAY_CHUNK);
    int size = fcntl(s->src, F_GETPIPE_SZ);
    fcntl(s->q_w, F_SETPIPE_SZ, size > 0 ? size : RELAY_CHUNK);
  }
  napi_value name;
  if (fail == NULL && (napi_create_string_utf8(env, "lockd:relay", NAPI_AUTO_LENGTH, &name) != napi_ok ||
                       napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &r->done) != napi_ok)) {
    fail = "napi_create_threadsafe_function";
    fail_errno = ENOMEM;
  }
  if (fail != NULL) {
    for (int i = 0; i < r->nstreams; i++) {
      close_fd(&r->s[i].q_r);
      close_fd(&r->s[i].q_w);
    }
    relay_free(r);
    char msg[160];
    snprintf(msg, sizeof msg, "relayStart: %s failed: %s", fail, strerror(fail_errno));
    napi_throw_error(env, "ERELAY", msg);
    return NULL;
  }
  r->owners = 2;
  r->running = r->nstreams;
  /* Threads start with every signal blocked: the daemon's signals stay with its main thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  int started = 0;
  for (int i = 0; i < r->nstreams; i++) {
    pthread_t t;
    int rc = pthread_create(&t, &attr, stream_main, &r->s[i]);
    if (rc == 0) {
      started++;
      continue;
    }
    /* No thread for this stream: close its pipe so the job sees EPIPE there rather than block for ever. */
    stream *s = &r->s[i];
    s->err = rc;
    s->where = "pthread_create";
    close_fd(&s->src);
    close_fd(&s->dest);
    close_fd(&s->q_r);
    close_fd(&s->q_w);
    pthread_mutex_lock(&r->mu);
    bool last = --r->running == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) {
      close_fd(&r->log_fd);
      napi_call_threadsafe_function(r->done, r, napi_tsfn_blocking);
      napi_release_threadsafe_function(r->done, napi_tsfn_release);
    }
  }
  (void)started;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  napi_value handle;
  NAPI_OK(napi_create_external(env, r, on_handle_finalized, NULL, &handle));
  return handle;
}

static napi_value RelayCancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "EINVAL", "relayCancel(handle)");
    return NULL;
  }
  relay *r = data;
  /* The cancel pipe is never read: once written it stays readable, so every wait of every stream wakes. */
  if (r->cancel_w >= 0) {
    ssize_t k;
    do k = write(r->cancel_w, "x", 1);
    while (k < 0 && errno == EINTR);
  }
  napi_value undefined;
  NAPI_OK(napi_get_undefined(env, &undefined));
  return undefined;
}

static napi_value RelayPending(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "EINVAL", "relayPending(handle)");
    return NULL;
  }
  relay *r = data;
  double pending = 0;
  /* Under the mutex: a stream closes its src holding it, so the fd asked about is never a reused number. */
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < r->nstreams; i++) {
    int n = 0;
    if (r->s[i].src >= 0 && ioctl(r->s[i].src, FIONREAD, &n) == 0 && n > 0) pending += n;
  }
  pthread_mutex_unlock(&r->mu);
  napi_value out;
  NAPI_OK(napi_create_double(env, pending, &out));
  return out;
}

napi_status lockd_relay_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"relayStart", NULL, RelayStart, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayCancel", NULL, RelayCancel, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayPending", NULL, RelayPending, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
