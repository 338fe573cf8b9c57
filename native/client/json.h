/*
 * A small JSON reader for the daemon's control messages: the whole frame is parsed into a tree (bounded depth,
 * every length checked), so a malformed or hostile frame is a parse error, never a read out of bounds.
 */
#ifndef LOCKD_FAST_JSON_H
#define LOCKD_FAST_JSON_H
#include <stddef.h>

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
  int type;
  double num;
  char *str; /* J_STR: decoded UTF-8, NUL-terminated (a \u0000 inside ends it early, which is harmless here) */
  char *key; /* set on members of an object */
  const char *raw; /* the value's text in the parsed frame (valid while the frame is), and its length */
  size_t rawlen;
  struct jv *first, *next;
} jv;

/* NULL on any syntax error, trailing garbage or nesting deeper than 64. */
jv *json_parse(const char *text, size_t len);
void json_free(jv *v);
const jv *json_get(const jv *obj, const char *key);
/* A member's string value, or NULL when absent or not a string. */
const char *json_str(const jv *obj, const char *key);
/* A member's number, or `dflt` when absent or not a number. */
double json_num(const jv *obj, const char *key, double dflt);

#endif
