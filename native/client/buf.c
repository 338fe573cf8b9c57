#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(void) {
  static const char msg[] = "lockd: out of memory\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(125);
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) oom();
  return p;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

void b_put(buf *b, const void *data, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, data, n);
  b->n += n;
  b->p[b->n] = '\0';
}

void b_str(buf *b, const char *s) { b_put(b, s, strlen(s)); }

void b_printf(buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    b_put(b, tmp, (size_t)n);
    return;
  }
  char *big = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b_put(b, big, (size_t)n);
  free(big);
}

void b_json_str(buf *b, const char *s) {
  b_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    switch (*c) {
      case '"': b_put(b, "\\\"", 2); break;
      case '\\': b_put(b, "\\\\", 2); break;
      case '\n': b_put(b, "\\n", 2); break;
      case '\r': b_put(b, "\\r", 2); break;
      case '\t': b_put(b, "\\t", 2); break;
      case '\b': b_put(b, "\\b", 2); break;
      case '\f': b_put(b, "\\f", 2); break;
      default:
        if (*c < 0x20) b_printf(b, "\\u%04x", *c);
        else b_put(b, c, 1);
    }
  }
  b_put(b, "\"", 1);
}

void b_free(buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}
