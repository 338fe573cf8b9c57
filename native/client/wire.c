#define _GNU_SOURCE
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

int connect_unix(const char *path) {
  struct sockaddr_un sa;
  if (strlen(path) >= sizeof sa.sun_path) return -1;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return -1;
  /* Close-on-exec: a hand-over to Node must not leave the daemon a half-used connection. */
  (void)fcntl(s, F_SETFD, FD_CLOEXEC);
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(s);
    return -1;
  }
  return s;
}

static int send_all(int sock, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(sock, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void header(char *h, size_t len, int kind) {
  h[0] = (char)((len >> 24) & 0xff);
  h[1] = (char)((len >> 16) & 0xff);
  h[2] = (char)((len >> 8) & 0xff);
  h[3] = (char)(len & 0xff);
  h[4] = (char)kind;
}

int send_two_json(int sock, const char *a, size_t an, const char *b, size_t bn) {
  buf o = {0};
  char h[5];
  header(h, an, KIND_JSON);
  b_put(&o, h, 5);
  b_put(&o, a, an);
  header(h, bn, KIND_JSON);
  b_put(&o, h, 5);
  b_put(&o, b, bn);
  int r = send_all(sock, o.p, o.n);
  b_free(&o);
  return r;
}

int send_frame(int sock, int kind, const char *data, size_t n) {
  char h[5];
  header(h, n, kind);
  if (send_all(sock, h, 5)) return -1;
  return send_all(sock, data, n);
}

int send_json(int sock, const char *json, size_t n) { return send_frame(sock, KIND_JSON, json, n); }

int send_fds(int sock, const int *fds, int n) {
  char zero = 0;
  struct iovec iov = {&zero, 1};
  union {
    char raw[CMSG_SPACE(sizeof(int) * 8)];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.raw;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
  for (;;) {
    ssize_t w = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (w == 1) return 0;
    if (w < 0 && errno == EINTR) continue;
    return -1;
  }
}

void reader_init(frame_reader *r) { memset(r, 0, sizeof *r); }

void reader_free(frame_reader *r) {
  free(r->p);
  memset(r, 0, sizeof *r);
}

int reader_fill(frame_reader *r, int sock) {
  if (r->start > 0 && r->start == r->end) r->start = r->end = 0;
  if (r->cap - r->end < 65536) {
    /* Compact first; grow only when a frame is bigger than what is buffered (bounded by the frame limits). */
    if (r->start > 0) {
      memmove(r->p, r->p + r->start, r->end - r->start);
      r->end -= r->start;
      r->start = 0;
    }
    if (r->cap - r->end < 65536) {
      r->cap = r->cap ? r->cap * 2 : 131072;
      r->p = xrealloc(r->p, r->cap);
    }
  }
  for (;;) {
    ssize_t n = read(sock, r->p + r->end, 65536);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    r->end += (size_t)n;
    return (int)n;
  }
}

int reader_next(frame_reader *r, frame *f) {
  size_t have = r->end - r->start;
  if (have < 5) return FRAME_NONE;
  const unsigned char *h = (const unsigned char *)r->p + r->start;
  uint32_t len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
  int kind = h[4];
  if (kind != KIND_JSON && kind != KIND_STDOUT && kind != KIND_STDERR) {
    snprintf(r->error, sizeof r->error, "unknown frame kind %d", kind);
    return FRAME_ERROR;
  }
  uint32_t limit = kind == KIND_JSON ? MAX_JSON_FRAME : MAX_DATA_FRAME;
  if (len > limit) {
    snprintf(r->error, sizeof r->error, "frame of %u bytes exceeds the %u-byte limit", len, limit);
    return FRAME_ERROR;
  }
  if (have < 5 + (size_t)len) return FRAME_NONE;
  f->kind = kind;
  f->data = r->p + r->start + 5;
  f->len = len;
  r->start += 5 + (size_t)len;
  return FRAME_OK;
}
