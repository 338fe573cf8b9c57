/*
 * lockd_native: the two syscalls Node does not expose and lockd needs.
 *
 *   peerCred(fd)                    -> { pid, uid, gid } of the process at the other end of a Unix socket.
 *                                      The daemon uses it to know WHO is asking without trusting the request.
 *   flock(fd, mode, nonblocking)    -> true when the lock was taken, false when it is busy (EWOULDBLOCK).
 *                                      mode is "ex", "sh" or "un". The daemon uses it to hold a real flock(2)
 *                                      on each held lock file so legacy `flock(1)` users and lockd exclude
 *                                      each other. It must only be called non-blocking from the main thread.
 *
 * fdpass.c adds sendFds/recvFds (SCM_RIGHTS) and, on Linux, relay.c adds relayStart/relayCancel (tee/splice).
 *
 * Plain N-API (node_api.h, NAPI_VERSION pinned in binding.gyp), so one build works on Node 20, 22 and 24.
 * Errors are thrown as Node-style system errors: err.code = "ENOTSOCK" etc., err.errno, err.syscall.
 */
#define _GNU_SOURCE /* struct ucred on glibc */
#include <node_api.h>

#ifdef LOCKD_HAVE_LAUNCHER
#include "launcher.h"
#include "pty.h"
#endif
#include "fdpass.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#if defined(__APPLE__)
#include <sys/ucred.h>
#endif

/* Bail out of the current function returning NULL if an N-API call failed (a JS exception is then pending). */
#define NAPI_OK(call)                  \
  do {                                 \
    if ((call) != napi_ok) return NULL; \
  } while (0)

static const char *errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTCONN: return "ENOTCONN";
    case EINVAL: return "EINVAL";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOLCK: return "ENOLCK";
    case EINTR: return "EINTR";
    case EWOULDBLOCK: return "EWOULDBLOCK";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    default: return "EUNKNOWN";
  }
}

/* Throw an Error shaped like Node's own system errors, so callers can branch on err.code. */
static void throw_errno(napi_env env, const char *syscall, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s failed: %s (%s)", syscall, strerror(err), errno_name(err));
  napi_value msg, code, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return;
  if (napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code) != napi_ok) return;
  if (napi_create_error(env, code, msg, &error) != napi_ok) return;
  if (napi_create_int32(env, -err, &errno_value) == napi_ok) napi_set_named_property(env, error, "errno", errno_value);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok)
    napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
}

/* Read a non-negative int32 file descriptor; throws a TypeError/RangeError otherwise. */
static int get_fd(napi_env env, napi_value value, int *fd) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type != napi_number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a number");
    return 0;
  }
  if (napi_get_value_int32(env, value, fd) != napi_ok) return 0;
  if (*fd < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd must be >= 0");
    return 0;
  }
  return 1;
}

/* Fetch `want` arguments (argv must hold that many) and read argv[0] as the fd; throws `usage` when too few. */
static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int *fd, const char *usage) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", usage);
    return 0;
  }
  return get_fd(env, argv[0], fd);
}

static napi_value set_int(napi_env env, napi_value obj, const char *name, double v) {
  napi_value num;
  NAPI_OK(napi_create_double(env, v, &num));
  NAPI_OK(napi_set_named_property(env, obj, name, num));
  return obj;
}

static napi_value PeerCred(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, &fd, "peerCred(fd) needs a file descriptor")) return NULL;

  double pid, uid, gid;
#if defined(__linux__)
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
    return NULL;
  }
  pid = cred.pid;
  uid = cred.uid;
  gid = cred.gid;
#elif defined(__APPLE__)
  uid_t euid;
  gid_t egid;
  if (getpeereid(fd, &euid, &egid) != 0) {
    throw_errno(env, "getpeereid", errno);
    return NULL;
  }
  pid_t peer_pid = 0;
  socklen_t len = sizeof peer_pid;
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &peer_pid, &len) != 0) {
    throw_errno(env, "getsockopt(LOCAL_PEERPID)", errno);
    return NULL;
  }
  pid = peer_pid;
  uid = euid;
  gid = egid;
#else
  (void)fd;
  throw_errno(env, "peerCred", ENOSYS);
  return NULL;
#endif

  napi_value result;
  NAPI_OK(napi_create_object(env, &result));
  if (!set_int(env, result, "pid", pid)) return NULL;
  if (!set_int(env, result, "uid", uid)) return NULL;
  if (!set_int(env, result, "gid", gid)) return NULL;
  return result;
}

static napi_value Flock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  if (!get_args(env, info, 3, argv, &fd, "flock(fd, mode, nonblocking) needs three arguments")) return NULL;

  char mode[4] = {0};
  size_t mode_len = 0;
  if (napi_get_value_string_utf8(env, argv[1], mode, sizeof mode, &mode_len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "mode must be a string");
    return NULL;
  }
  int op;
  if (strcmp(mode, "ex") == 0) op = LOCK_EX;
  else if (strcmp(mode, "sh") == 0) op = LOCK_SH;
  else if (strcmp(mode, "un") == 0) op = LOCK_UN;
  else {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "mode must be \"ex\", \"sh\" or \"un\"");
    return NULL;
  }
  bool nonblocking = false;
  if (napi_get_value_bool(env, argv[2], &nonblocking) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "nonblocking must be a boolean");
    return NULL;
  }
  if (nonblocking) op |= LOCK_NB;

  int rc;
  do {
    rc = flock(fd, op);
  } while (rc != 0 && errno == EINTR);

  bool acquired = true;
  if (rc != 0) {
    /* Busy is an answer, not an error: the caller polls or waits. */
    if (nonblocking && (errno == EWOULDBLOCK || errno == EAGAIN)) {
      acquired = false;
    } else {
      throw_errno(env, "flock", errno);
      return NULL;
    }
  }
  napi_value result;
  NAPI_OK(napi_get_boolean(env, acquired, &result));
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"peerCred", NULL, PeerCred, NULL, NULL, NULL, napi_enumerable, NULL},
      {"flock", NULL, Flock, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  NAPI_OK(lockd_fdpass_init(env, exports));
#ifdef LOCKD_HAVE_LAUNCHER
  NAPI_OK(lockd_launcher_init(env, exports));
  NAPI_OK(lockd_relay_init(env, exports));
  NAPI_OK(lockd_pty_init(env, exports));
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
