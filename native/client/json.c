#include "json.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define MAX_DEPTH 64

typedef struct {
  const char *p, *end;
  int depth;
} parser;

static void ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static jv *node(int type) {
  jv *v = xmalloc(sizeof *v);
  memset(v, 0, sizeof *v);
  v->type = type;
  return v;
}

static int hex4(parser *ps, unsigned *out) {
  if (ps->end - ps->p < 4) return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = ps->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  ps->p += 4;
  *out = v;
  return 0;
}

static void utf8(buf *b, unsigned cp) {
  unsigned char o[4];
  size_t n;
  if (cp < 0x80) o[0] = (unsigned char)cp, n = 1;
  else if (cp < 0x800) o[0] = (unsigned char)(0xc0 | (cp >> 6)), o[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
  else if (cp < 0x10000)
    o[0] = (unsigned char)(0xe0 | (cp >> 12)), o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), o[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
  else
    o[0] = (unsigned char)(0xf0 | (cp >> 18)), o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)), o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
    o[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
  b_put(b, o, n);
}

static char *string(parser *ps) {
  if (ps->p >= ps->end || *ps->p != '"') return NULL;
  ps->p++;
  buf b = {0};
  b_put(&b, "", 0);
  while (ps->p < ps->end) {
    unsigned char c = (unsigned char)*ps->p++;
    if (c == '"') return b.p;
    if (c < 0x20) break;
    if (c != '\\') {
      b_put(&b, &c, 1);
      continue;
    }
    if (ps->p >= ps->end) break;
    char e = *ps->p++;
    unsigned cp;
    switch (e) {
      case '"': b_put(&b, "\"", 1); continue;
      case '\\': b_put(&b, "\\", 1); continue;
      case '/': b_put(&b, "/", 1); continue;
      case 'b': b_put(&b, "\b", 1); continue;
      case 'f': b_put(&b, "\f", 1); continue;
      case 'n': b_put(&b, "\n", 1); continue;
      case 'r': b_put(&b, "\r", 1); continue;
      case 't': b_put(&b, "\t", 1); continue;
      case 'u':
        if (hex4(ps, &cp)) goto bad;
        if (cp >= 0xd800 && cp < 0xdc00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
          parser save = *ps;
          unsigned lo;
          ps->p += 2;
          if (!hex4(ps, &lo) && lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          else *ps = save;
        }
        if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; /* a lone surrogate, as Node decodes it */
        utf8(&b, cp);
        continue;
      default: goto bad;
    }
  }
bad:
  b_free(&b);
  return NULL;
}

static jv *value(parser *ps);

static jv *container(parser *ps, int type) {
  char close = type == J_ARR ? ']' : '}';
  if (++ps->depth > MAX_DEPTH) return NULL;
  ps->p++;
  jv *v = node(type), **tail = &v->first;
  ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    ps->depth--;
    return v;
  }
  for (;;) {
    char *key = NULL;
    if (type == J_OBJ) {
      ws(ps);
      key = string(ps);
      if (!key) goto bad;
      ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        free(key);
        goto bad;
      }
      ps->p++;
    }
    jv *kid = value(ps);
    if (!kid) {
      free(key);
      goto bad;
    }
    kid->key = key;
    *tail = kid;
    tail = &kid->next;
    ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == close) {
      ps->p++;
      ps->depth--;
      return v;
    }
    goto bad;
  }
bad:
  json_free(v);
  return NULL;
}

static jv *number(parser *ps) {
  const char *s = ps->p;
  if (ps->p < ps->end && *ps->p == '-') ps->p++;
  if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return NULL;
  while (ps->p < ps->end && ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' || *ps->p == 'e' || *ps->p == 'E' || *ps->p == '+' || *ps->p == '-')) ps->p++;
  size_t n = (size_t)(ps->p - s);
  if (n > 64) return NULL;
  char tmp[65];
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *endp;
  double d = strtod(tmp, &endp);
  if (*endp) return NULL;
  jv *v = node(J_NUM);
  v->num = d;
  return v;
}

static int word(parser *ps, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) return 0;
  ps->p += n;
  return 1;
}

static jv *value_at(parser *ps);

/* Every value remembers its own text: `--result-fd` passes the daemon's JSON of the result on unchanged. */
static jv *value(parser *ps) {
  ws(ps);
  const char *start = ps->p;
  jv *v = value_at(ps);
  if (v) {
    v->raw = start;
    v->rawlen = (size_t)(ps->p - start);
  }
  return v;
}

static jv *value_at(parser *ps) {
  if (ps->p >= ps->end) return NULL;
  switch (*ps->p) {
    case '{': return container(ps, J_OBJ);
    case '[': return container(ps, J_ARR);
    case '"': {
      char *s = string(ps);
      if (!s) return NULL;
      jv *v = node(J_STR);
      v->str = s;
      return v;
    }
    case 't': return word(ps, "true") ? node(J_TRUE) : NULL;
    case 'f': return word(ps, "false") ? node(J_FALSE) : NULL;
    case 'n': return word(ps, "null") ? node(J_NULL) : NULL;
    default: return number(ps);
  }
}

jv *json_parse(const char *text, size_t len) {
  parser ps = {text, text + len, 0};
  jv *v = value(&ps);
  if (!v) return NULL;
  ws(&ps);
  if (ps.p != ps.end) {
    json_free(v);
    return NULL;
  }
  return v;
}

void json_free(jv *v) {
  while (v) {
    jv *next = v->next;
    json_free(v->first);
    free(v->str);
    free(v->key);
    free(v);
    v = next;
  }
}

const jv *json_get(const jv *obj, const char *key) {
  if (!obj || obj->type != J_OBJ) return NULL;
  const jv *found = NULL;
  /* The last duplicate wins, as in JSON.parse. */
  for (const jv *k = obj->first; k; k = k->next)
    if (strcmp(k->key, key) == 0) found = k;
  return found;
}

const char *json_str(const jv *obj, const char *key) {
  const jv *v = json_get(obj, key);
  return v && v->type == J_STR ? v->str : NULL;
}

double json_num(const jv *obj, const char *key, double dflt) {
  const jv *v = json_get(obj, key);
  return v && v->type == J_NUM ? v->num : dflt;
}
