/* A growable byte buffer and the JSON string writer the request is built with. */
#ifndef LOCKD_FAST_BUF_H
#define LOCKD_FAST_BUF_H
#include <stddef.h>

typedef struct {
  char *p;
  size_t n, cap;
} buf;

void b_put(buf *b, const void *data, size_t n);
void b_str(buf *b, const char *s);
void b_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, escaped as JSON.stringify escapes it (bytes >= 0x80 pass through as UTF-8). */
void b_json_str(buf *b, const char *s);
void b_free(buf *b);
/* Out of memory is not a state this client can report anything useful from: it says so and exits 125. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
