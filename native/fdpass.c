/*
 * Descriptor passing over a connected Unix socket (SCM_RIGHTS), which Node's `net` cannot do:
 *
 *   sendFds(socketFd, fds, payload)  -> bytes of payload sent (one sendmsg carrying every fd in `fds`); throws a
 *                                       Node-style system error (err.code) on failure, null when the socket is full
 *                                       (EAGAIN: the caller waits and tries again).
 *   recvFds(socketFd, maxFds, maxLen) -> null when nothing is there yet (EAGAIN), else { fds, data }: the descriptors
 *                                       received (close-on-exec) and the payload bytes. Never blocks (MSG_DONTWAIT).
 *
 * `lockd run` sends its stdout/stderr (and stdin with -i) to the daemon so a job's output reaches the caller without
 * passing through either process (docs/protocol.md, "Descriptor passing"). The daemon calls recvFds only while its
 * own stream reading of that socket is stopped: bytes that libuv reads with read(2) lose their ancillary data.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fdpass.h"

#define MAX_PASSED_FDS 8
#define MAX_PAYLOAD 256
#ifdef MSG_NOSIGNAL
#define SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL)
#else
#define SEND_FLAGS MSG_DONTWAIT
#endif

#define NAPI_OK(call)                   \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

static void fd_throw(napi_env env, const char *syscall_name, int err) {
  char message[160];
  const char *code = err == EBADF ? "EBADF" : err == ENOTSOCK ? "ENOTSOCK" : err == EPIPE ? "EPIPE" : err == ECONNRESET ? "ECONNRESET"
                     : err == EINVAL ? "EINVAL" : err == EMFILE ? "EMFILE" : err == EMSGSIZE ? "EMSGSIZE" : err == ENOBUFS ? "ENOBUFS"
                                                                                                                : "EUNKNOWN";
  snprintf(message, sizeof message, "%s failed: %s (%s)", syscall_name, strerror(err), code);
  napi_value msg, code_v, error, v;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok) return;
  if (napi_create_error(env, code_v, msg, &error) != napi_ok) return;
  if (napi_create_int32(env, -err, &v) == napi_ok) napi_set_named_property(env, error, "errno", v);
  if (napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, error, "syscall", v);
  napi_throw(env, error);
}

static napi_value SendFds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t sock = -1;
  bool is_array = false, is_buffer = false;
  uint32_t n = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || sock < 0 || napi_is_array(env, argv[1], &is_array) != napi_ok ||
      !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok || n < 1 || n > MAX_PASSED_FDS ||
      napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, "EINVAL", "sendFds(socketFd, fds (1 to 8 descriptors), payload (a non-empty Buffer))");
    return NULL;
  }
  int fds[MAX_PASSED_FDS];
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    int32_t fd = -1;
    if (napi_get_element(env, argv[1], i, &e) != napi_ok || napi_get_value_int32(env, e, &fd) != napi_ok || fd < 0) {
      napi_throw_type_error(env, "EINVAL", "sendFds: every descriptor must be a number >= 0");
      return NULL;
    }
    fds[i] = fd;
  }
  void *data = NULL;
  size_t len = 0;
  NAPI_OK(napi_get_buffer_info(env, argv[2], &data, &len));
  if (len < 1 || len > MAX_PAYLOAD) {
    napi_throw_range_error(env, "EINVAL", "sendFds: the payload must be 1 to 256 bytes (a descriptor needs at least one byte to ride on)");
    return NULL;
  }
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct iovec iov = {data, len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n);
  memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n);
  ssize_t sent;
  do sent = sendmsg(sock, &msg, SEND_FLAGS);
  while (sent < 0 && errno == EINTR);
  napi_value result;
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      NAPI_OK(napi_get_null(env, &result));
      return result;
    }
    fd_throw(env, "sendmsg", errno);
    return NULL;
  }
  NAPI_OK(napi_create_int64(env, sent, &result));
  return result;
}

static napi_value RecvFds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t sock = -1, max_fds = 0, max_len = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || sock < 0 || napi_get_value_int32(env, argv[1], &max_fds) != napi_ok ||
      max_fds < 1 || max_fds > MAX_PASSED_FDS || napi_get_value_int32(env, argv[2], &max_len) != napi_ok || max_len < 1 || max_len > MAX_PAYLOAD) {
    napi_throw_type_error(env, "EINVAL", "recvFds(socketFd, maxFds (1 to 8), maxLen (1 to 256))");
    return NULL;
  }
  char data[MAX_PAYLOAD];
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct iovec iov = {data, (size_t)max_len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  /* Room for the most the caller accepts: more than that sets MSG_CTRUNC (and the kernel closes the extra ones). */
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)max_fds);
  int flags = MSG_DONTWAIT;
#ifdef MSG_CMSG_CLOEXEC
  flags |= MSG_CMSG_CLOEXEC; /* atomically: no spawn in between may inherit them */
#endif
  ssize_t got;
  do got = recvmsg(sock, &msg, flags);
  while (got < 0 && errno == EINTR);
  napi_value result;
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      NAPI_OK(napi_get_null(env, &result));
      return result;
    }
    fd_throw(env, "recvmsg", errno);
    return NULL;
  }
  int fds[MAX_PASSED_FDS];
  int nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (nfds < MAX_PASSED_FDS) fds[nfds++] = fd;
      else close(fd);
    }
  }
#ifndef MSG_CMSG_CLOEXEC
  for (int i = 0; i < nfds; i++) fcntl(fds[i], F_SETFD, FD_CLOEXEC);
#endif
  if (msg.msg_flags & MSG_CTRUNC) {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    fd_throw(env, "recvmsg (more descriptors than expected)", EMSGSIZE);
    return NULL;
  }
  napi_value arr, buf;
  NAPI_OK(napi_create_object(env, &result));
  NAPI_OK(napi_create_array_with_length(env, (size_t)nfds, &arr));
  for (int i = 0; i < nfds; i++) {
    napi_value v;
    NAPI_OK(napi_create_int32(env, fds[i], &v));
    NAPI_OK(napi_set_element(env, arr, (uint32_t)i, v));
  }
  NAPI_OK(napi_create_buffer_copy(env, (size_t)got, data, NULL, &buf));
  NAPI_OK(napi_set_named_property(env, result, "fds", arr));
  NAPI_OK(napi_set_named_property(env, result, "data", buf));
  return result;
}

napi_status lockd_fdpass_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sendFds", NULL, SendFds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvFds", NULL, RecvFds, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
