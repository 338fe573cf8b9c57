#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "run-text.h"

/* A bound far above any real lockd.json: a bigger one is Node's to read. */
#define MAX_CONFIG (1 << 20)

static int known_key(const char *k) {
  if (k[0] == '$' || (k[0] == '/' && k[1] == '/')) return 1; /* $schema, comments: left alone, as by Node */
  for (const char *const *p = CONFIG_KEYS; *p; p++)
    if (strcmp(*p, k) == 0) return 1;
  return 0;
}

const char *config_read(config_file *c, const char *path) {
  memset(c, 0, sizeof *c);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ENOTDIR ? NULL : "a lockd.json this client cannot open (Node says why)";
  buf b = {0};
  b_put(&b, "", 0);
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      b_free(&b);
      return "a lockd.json this client cannot read";
    }
    if (n == 0) break;
    b_put(&b, chunk, (size_t)n);
    if (b.n > MAX_CONFIG) {
      close(fd);
      b_free(&b);
      return "a lockd.json over 1 MiB";
    }
  }
  close(fd);
  /* Node reads the file as UTF-8 (invalid bytes become U+FFFD) and JSON.parse decodes \u escapes: text with either
   * is Node's to read, so that no setting can differ by a byte. */
  for (size_t i = 0; i < b.n; i++) {
    if ((unsigned char)b.p[i] >= 0x80 || b.p[i] == '\0' || (b.p[i] == '\\' && i + 1 < b.n && b.p[i + 1] == 'u')) {
      b_free(&b);
      return "a lockd.json with non-ASCII text or \\u escapes";
    }
  }
  jv *v = json_parse(b.p, b.n);
  if (!v) {
    b_free(&b);
    return "a lockd.json that is not valid JSON (Node warns about it)";
  }
  c->text = b.p;
  if (v->type != J_OBJ) {
    json_free(v);
    return NULL; /* not an object: Node ignores the file, silently */
  }
  for (const jv *m = v->first; m; m = m->next) {
    if (!known_key(m->key)) {
      json_free(v);
      return "a lockd.json with a key lockd does not know (Node warns about it)";
    }
  }
  c->root = v;
  return NULL;
}

void config_free(config_file *c) {
  json_free(c->root);
  free(c->text);
  memset(c, 0, sizeof *c);
}

/* A number whose text String(Number(text)) gives back unchanged: -?(0|[1-9]d{0,14})(.d*[1-9])? */
static int canonical_number(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-') i++;
  size_t int_start = i;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  size_t digits = i - int_start;
  if (digits == 0 || digits > 15 || (digits > 1 && s[int_start] == '0')) return 0;
  if (i < n && s[i] == '.') {
    size_t f = ++i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == f || s[i - 1] == '0' || i - f > 6) return 0;
  }
  if (i != n) return 0;
  if (n == 2 && s[0] == '-' && s[1] == '0') return 0; /* String(-0) is "0" */
  return 1;
}

static const char *value_of(const jv *v, const char **why) {
  switch (v->type) {
    case J_NULL: return NULL;
    case J_TRUE: return "true";
    case J_FALSE: return "false";
    case J_STR: return v->str;
    case J_NUM: {
      if (!canonical_number(v->raw, v->rawlen)) {
        *why = "a lockd.json number this client does not spell as Node would";
        return NULL;
      }
      /* raw points into the file's text, which stays alive: return a NUL-terminated copy kept with the value */
      static char spelled[8][32];
      static int next;
      char *o = spelled[next++ % 8];
      memcpy(o, v->raw, v->rawlen);
      o[v->rawlen] = '\0';
      return o;
    }
    default: *why = "a lockd.json setting that is not a string, number or boolean"; return NULL;
  }
}

const char *config_value(const config_file *build_root, const config_file *state_dir, const char *key, const char **why) {
  const config_file *files[] = {build_root, state_dir};
  for (int i = 0; i < 2; i++) {
    if (!files[i] || !files[i]->root) continue;
    const jv *v = json_get(files[i]->root, key);
    if (!v) continue;
    const char *s = value_of(v, why);
    if (s || *why) return s;
  }
  return NULL;
}
