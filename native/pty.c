/*
 * A pseudo-terminal for a job whose caller's stdout is a terminal, so the job's isatty(1) is true as under flock(1)
 * (colours, line buffering) while output.log still gets every byte (docs/architecture.md, "The output path"):
 *
 *   ptyOpen(callerFd)     -> [master, slave, control]: a new pty (close-on-exec, not anyone's controlling terminal), with the
 *                            caller's window size, output post-processing and echo off (the log holds the job's
 *                            bytes, not "\r\n"; the caller's own terminal adds its line discipline on the way out).
 *                            control is a second descriptor of the master, kept by the daemon for ptyResize, so
 *                            a resize can never hit a descriptor number the pump has closed and someone reused.
 *   ptyResize(control, cols, rows) -> the job's window size follows the caller's (the kernel sends it SIGWINCH).
 *   ptyPump(master, pipeW) -> starts a thread that copies the master into the pipe the relay reads (relay.c tees
 *                            pipes only) until the last slave descriptor is closed (EIO) or the relay is gone
 *                            (EPIPE); it then closes both. The pipe's capacity is the backpressure: a full pipe
 *                            stops the copy, the pty's buffer fills and the job blocks, as it would on a terminal.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "pty.h"

#define PUMP_BUF 65536

static void throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
}

static bool arg_int(napi_env env, napi_value v, int32_t *out) { return napi_get_value_int32(env, v, out) == napi_ok; }

static napi_value PtyOpen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  int32_t caller = -1;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 1 || !arg_int(env, args[0], &caller)) {
    napi_throw_type_error(env, "EINVAL", "ptyOpen(callerFd)");
    return NULL;
  }
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) {
    throw_errno(env, "posix_openpt", errno);
    return NULL;
  }
  char name[128];
  int slave = -1;
  if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof name) != 0 ||
      (slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
    int err = errno;
    close(master);
    throw_errno(env, "opening the pty", err);
    return NULL;
  }
  struct winsize ws;
  if (ioctl(caller, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
  struct termios tio;
  if (tcgetattr(slave, &tio) == 0) {
    tio.c_oflag &= ~(tcflag_t)OPOST;
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    tcsetattr(slave, TCSANOW, &tio);
  }
  int control = fcntl(master, F_DUPFD_CLOEXEC, 3);
  if (control < 0) {
    int err = errno;
    close(master);
    close(slave);
    throw_errno(env, "dup of the pty master", err);
    return NULL;
  }
  napi_value out, m, s, c;
  napi_create_array_with_length(env, 3, &out);
  napi_create_int32(env, master, &m);
  napi_create_int32(env, slave, &s);
  napi_create_int32(env, control, &c);
  napi_set_element(env, out, 0, m);
  napi_set_element(env, out, 1, s);
  napi_set_element(env, out, 2, c);
  return out;
}

typedef struct {
  int master;
  int pipe_w;
} pump;

static void *pump_main(void *arg) {
  pump *p = arg;
  char *buf = malloc(PUMP_BUF);
  while (buf != NULL) {
    ssize_t n = read(p->master, buf, PUMP_BUF);
    if (n < 0 && errno == EINTR) continue;
    /* EIO: every slave descriptor is closed (the job and all it started are gone). */
    if (n <= 0) break;
    bool ok = true;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(p->pipe_w, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) {
        struct pollfd pf = {p->pipe_w, POLLOUT, 0};
        poll(&pf, 1, -1);
        continue;
      }
      if (w <= 0) {
        ok = false;
        break;
      }
      off += w;
    }
    if (!ok) break;
  }
  free(buf);
  close(p->pipe_w);
  close(p->master);
  free(p);
  return NULL;
}

static napi_value PtyPump(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  int32_t master = -1, pipe_w = -1;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 || !arg_int(env, args[0], &master) || !arg_int(env, args[1], &pipe_w)) {
    napi_throw_type_error(env, "EINVAL", "ptyPump(master, pipeW)");
    return NULL;
  }
  pump *p = malloc(sizeof *p);
  if (p == NULL) {
    throw_errno(env, "ptyPump", ENOMEM);
    return NULL;
  }
  p->master = master;
  p->pipe_w = pipe_w;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int err = pthread_create(&th, &attr, pump_main, p);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    free(p);
    throw_errno(env, "pthread_create", err);
    return NULL;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

static napi_value PtyResize(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  int32_t fd = -1, cols = 0, rows = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 3 || !arg_int(env, args[0], &fd) || !arg_int(env, args[1], &cols) ||
      !arg_int(env, args[2], &rows) || cols < 1 || rows < 1 || cols > 65535 || rows > 65535) {
    napi_throw_type_error(env, "EINVAL", "ptyResize(control, cols, rows)");
    return NULL;
  }
  struct winsize ws = {(unsigned short)rows, (unsigned short)cols, 0, 0};
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) {
    throw_errno(env, "TIOCSWINSZ", errno);
    return NULL;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

napi_status lockd_pty_init(napi_env env, napi_value exports) {
  napi_value f;
  napi_status st0 = napi_create_function(env, "ptyResize", NAPI_AUTO_LENGTH, PtyResize, NULL, &f);
  if (st0 != napi_ok) return st0;
  st0 = napi_set_named_property(env, exports, "ptyResize", f);
  if (st0 != napi_ok) return st0;
  napi_status st = napi_create_function(env, "ptyOpen", NAPI_AUTO_LENGTH, PtyOpen, NULL, &f);
  if (st != napi_ok) return st;
  st = napi_set_named_property(env, exports, "ptyOpen", f);
  if (st != napi_ok) return st;
  st = napi_create_function(env, "ptyPump", NAPI_AUTO_LENGTH, PtyPump, NULL, &f);
  if (st != napi_ok) return st;
  return napi_set_named_property(env, exports, "ptyPump", f);
}
