#define _GNU_SOURCE
#include "request.h"

#include "config.h"

#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* process.env.NAME as a Setting reads it: unset and empty are the same. */
static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

char *resolve_path(const char *base, const char *p) {
  buf in = {0};
  if (p[0] != '/') {
    b_str(&in, base);
    b_str(&in, "/");
  }
  b_str(&in, p);
  char *out = xmalloc(in.n + 2);
  size_t n = 0;
  char *save = NULL;
  for (char *seg = strtok_r(in.p, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
    if (strcmp(seg, ".") == 0) continue;
    if (strcmp(seg, "..") == 0) {
      while (n > 0 && out[n - 1] != '/') n--;
      if (n > 0) n--;
      continue;
    }
    out[n++] = '/';
    size_t l = strlen(seg);
    memcpy(out + n, seg, l);
    n += l;
  }
  if (n == 0) out[n++] = '/';
  out[n] = '\0';
  b_free(&in);
  return out;
}

static char *join2(const char *a, const char *b) {
  buf o = {0};
  b_printf(&o, "%s/%s", a, b);
  char *r = resolve_path("/", o.p);
  b_free(&o);
  return r;
}

/* ---- CI-aware holder (src/client/holder.ts) ---------------------------------------------------------- */

static int is_set(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v || strcmp(v, "0") == 0) return 0;
  if (strlen(v) == 5 && strncasecmp(v, "false", 5) == 0) return 0;
  return 1;
}

enum { CI_NONE, CI_GITHUB, CI_GITLAB, CI_JENKINS, CI_DRONE, CI_BITBUCKET, CI_GENERIC };

static int detect_ci(void) {
  if (is_set("GITHUB_ACTIONS")) return CI_GITHUB;
  if (is_set("GITLAB_CI")) return CI_GITLAB;
  if (is_set("JENKINS_URL") || is_set("BUILD_TAG")) return CI_JENKINS;
  if (is_set("DRONE")) return CI_DRONE;
  if (is_set("BITBUCKET_BUILD_NUMBER")) return CI_BITBUCKET;
  static const char *generic[] = {"CI", "BUILD_ID", "TF_BUILD", "BUILDKITE", "CIRCLECI", "TEAMCITY_VERSION"};
  for (size_t i = 0; i < sizeof generic / sizeof *generic; i++)
    if (is_set(generic[i])) return CI_GENERIC;
  return CI_NONE;
}

int in_ci(void) { return detect_ci() != CI_NONE; }

static int unicode_edge; /* a value that JavaScript's trim() might treat differently (non-ASCII at an end) */

/* part(): control characters removed, trimmed, the fallback when empty. Returns a malloc'd string. */
static char *part(const char *name, const char *fallback) {
  const char *v = getenv(name);
  buf b = {0};
  b_put(&b, "", 0);
  for (const unsigned char *c = (const unsigned char *)(v ? v : ""); *c; c++)
    if (*c >= 0x20 && *c != 0x7f) b_put(&b, c, 1);
  size_t s = 0, e = b.n;
  while (s < e && isspace((unsigned char)b.p[s])) s++;
  while (e > s && isspace((unsigned char)b.p[e - 1])) e--;
  if (e > s && (((unsigned char)b.p[s]) >= 0x80 || ((unsigned char)b.p[e - 1]) >= 0x80)) unicode_edge = 1;
  char *out;
  if (e == s) out = xstrdup(fallback ? fallback : "unknown");
  else {
    out = xmalloc(e - s + 1);
    memcpy(out, b.p + s, e - s);
    out[e - s] = '\0';
  }
  b_free(&b);
  return out;
}

char *holder_string(long pid, const char *host, const char *user) {
  const char *override = getenv("LOCKD_HOLDER");
  if (override) {
    const char *s = override;
    const char *e = override + strlen(override);
    while (s < e && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    if (e > s) {
      if (((unsigned char)*s) >= 0x80 || ((unsigned char)e[-1]) >= 0x80) return NULL;
      char *o = xmalloc((size_t)(e - s) + 1);
      memcpy(o, s, (size_t)(e - s));
      o[e - s] = '\0';
      return o;
    }
  }
  unicode_edge = 0;
  buf o = {0};
  char *a, *b, *c, *d, *f;
  switch (detect_ci()) {
    case CI_GITHUB:
      a = part("GITHUB_REPOSITORY", NULL), b = part("GITHUB_RUN_ID", NULL), c = part("GITHUB_RUN_ATTEMPT", "1"), d = part("GITHUB_JOB", NULL),
      f = part("RUNNER_NAME", host);
      b_printf(&o, "ci:github:%s#%s-%s/%s@%s:%ld", a, b, c, d, f, pid);
      free(a), free(b), free(c), free(d), free(f);
      break;
    case CI_GITLAB:
      c = part("CI_JOB_ID", NULL), d = part("CI_JOB_NAME", c);
      a = part("CI_PROJECT_PATH", NULL), b = part("CI_PIPELINE_ID", NULL);
      b_printf(&o, "ci:gitlab:%s#%s/%s:%ld@%s", a, b, d, pid, host);
      free(a), free(b), free(c), free(d);
      break;
    case CI_JENKINS: {
      a = part("JOB_NAME", NULL), b = part("BUILD_NUMBER", NULL);
      buf fb = {0};
      b_printf(&fb, "jenkins-%s-%s", a, b);
      c = part("BUILD_TAG", fb.p);
      b_printf(&o, "ci:jenkins:%s:%ld@%s", c, pid, host);
      free(a), free(b), free(c), b_free(&fb);
      break;
    }
    case CI_DRONE:
      a = part("DRONE_REPO", NULL), b = part("DRONE_BUILD_NUMBER", NULL);
      b_printf(&o, "ci:drone:%s#%s:%ld@%s", a, b, pid, host);
      free(a), free(b);
      break;
    case CI_BITBUCKET:
      a = part("BITBUCKET_REPO_FULL_NAME", NULL), b = part("BITBUCKET_BUILD_NUMBER", NULL);
      b_printf(&o, "ci:bitbucket:%s#%s:%ld@%s", a, b, pid, host);
      free(a), free(b);
      break;
    case CI_GENERIC: b_printf(&o, "ci:generic:%s:%ld", host, pid); break;
    default: b_str(&o, user);
  }
  if (unicode_edge) {
    b_free(&o);
    return NULL;
  }
  return o.p;
}

static char *current_user(void) {
  struct passwd *pw = getpwuid(getuid());
  if (pw && pw->pw_name && *pw->pw_name) return xstrdup(pw->pw_name);
  if (env("USER")) return xstrdup(env("USER"));
  if (env("LOGNAME")) return xstrdup(env("LOGNAME"));
  buf b = {0};
  b_printf(&b, "uid-%ld", (long)getuid());
  return b.p;
}

/* ---- options ----------------------------------------------------------------------------------------- */

enum { O_STR, O_BOOL };
typedef struct {
  const char *name;
  int type;
  int multi;
} opt;

/* The options of RUN_OPTIONS this client reproduces; any other is a hand-over. */
static const opt OPTS[] = {
    {"socket", O_STR, 0},       {"state-dir", O_STR, 0},   {"root", O_STR, 0},           {"arch", O_STR, 0},
    {"lock", O_STR, 1},         {"global", O_STR, 1},      {"global-dir", O_STR, 0},     {"host-only", O_BOOL, 0},
    {"wait", O_STR, 0},         {"timeout", O_STR, 0},     {"kill-after", O_STR, 0},     {"detach", O_BOOL, 0},
    {"run-id", O_STR, 0},       {"runs-root", O_STR, 0},   {"log", O_STR, 0},            {"require-structured", O_BOOL, 0},
    {"require-marker", O_STR, 1}, {"require-all", O_STR, 1}, {"forbid-marker", O_STR, 1}, {"expect-timeout", O_BOOL, 0},
    {"keep", O_STR, 0},         {"holder", O_STR, 0},      {"conflict-exit-code", O_STR, 0}, {"quiet", O_BOOL, 0},
    {"on-lock-lost", O_STR, 0}, {"hold", O_STR, 0}, {"result-fd", O_STR, 0}, {"interactive", O_BOOL, 0},
    {"pool", O_STR, 1},         {"where", O_STR, 1},       {"member", O_STR, 0},         {"priority", O_STR, 0},
    {"supersede", O_STR, 0},    {"cancel-running", O_BOOL, 0}, {"progress-interval", O_STR, 0},
};
#define NOPTS (sizeof OPTS / sizeof *OPTS)
#define MAX_MULTI 64

typedef struct {
  const char *value; /* last value (strings), "1" (booleans) */
  const char *list[MAX_MULTI];
  int n;
} optval;

static int find_opt(const char *name, size_t len) {
  for (size_t i = 0; i < NOPTS; i++)
    if (strlen(OPTS[i].name) == len && strncmp(OPTS[i].name, name, len) == 0) return (int)i;
  return -1;
}

static int opt_index(const char *name) { return find_opt(name, strlen(name)); }

/* Seconds as parseSeconds reads them, for the plain decimal forms only: 1 = ok (*ms set, -1 = forever). */
static int seconds_ms(const char *v, int allow_inf, int min1, long long *ms) {
  char t[64];
  size_t n = strlen(v);
  if (n >= sizeof t) return 0;
  size_t s = 0, e = n;
  while (s < e && isspace((unsigned char)v[s])) s++;
  while (e > s && isspace((unsigned char)v[e - 1])) e--;
  n = e - s;
  for (size_t i = 0; i < n; i++) t[i] = (char)tolower((unsigned char)v[s + i]);
  t[n] = '\0';
  if (allow_inf && (!strcmp(t, "inf") || !strcmp(t, "infinity") || !strcmp(t, "none") || !strcmp(t, "forever"))) {
    *ms = -1;
    return 1;
  }
  if (n > 0 && t[n - 1] == 's') t[--n] = '\0';
  size_t i = 0, digits = 0;
  while (i < n && isdigit((unsigned char)t[i])) i++, digits++;
  if (digits == 0 || digits > 9) return 0;
  if (i < n && t[i] == '.') {
    i++;
    size_t frac = 0;
    while (i < n && isdigit((unsigned char)t[i])) i++, frac++;
    if (frac == 0 || frac > 9) return 0;
  }
  if (i != n) return 0;
  double x = strtod(t, NULL) * 1000;
  long long r = (long long)floor(x + 0.5); /* Math.round */
  if (min1 && r < 1) r = 1;
  *ms = r;
  return 1;
}

static int int_opt(const char *v, long lo, long hi, long *out) {
  size_t n = strlen(v);
  if (n == 0 || n > 9) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)v[i])) return 0;
  long x = strtol(v, NULL, 10);
  if (x < lo || x > hi) return 0;
  *out = x;
  return 1;
}

/* NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/, no '..', at most 200 characters. */
static int good_name(const char *s, size_t n) {
  if (n == 0 || n > 200 || !isalnum((unsigned char)s[0])) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) return 0;
    if (c == '.' && i + 1 < n && s[i + 1] == '.') return 0;
  }
  return 1;
}

/* One --lock/--global spec as a LockRef; 0 when Node would refuse it (it says why, after the hand-over). */
static int lock_ref(buf *o, const char *spec, int global, const char *root, const char *arch, const char *global_dir, int host_only, buf *names) {
  const char *c1 = strchr(spec, ':');
  size_t nlen = c1 ? (size_t)(c1 - spec) : strlen(spec);
  if (!good_name(spec, nlen)) return 0;
  const char *mode = c1 ? c1 + 1 : NULL;
  if (mode && strchr(mode, ':')) return 0;
  long slots = 0;
  const char *m = "exclusive";
  if (mode && strcmp(mode, "exclusive") != 0) {
    if (strcmp(mode, "shared") == 0) m = "shared";
    else if (strncmp(mode, "slots=", 6) == 0 && int_opt(mode + 6, 1, 999999999, &slots)) m = "slots";
    else return 0;
  }
  char *name = xmalloc(nlen + 1);
  memcpy(name, spec, nlen);
  name[nlen] = '\0';
  if (names->n) b_str(names, ", ");
  b_str(names, name);
  b_str(o, "{\"name\":");
  b_json_str(o, name);
  free(name);
  b_printf(o, ",\"mode\":\"%s\"", m);
  if (slots) b_printf(o, ",\"slots\":%ld", slots);
  if (!global) {
    b_str(o, ",\"scope\":\"local\",\"root\":");
    b_json_str(o, root);
    if (arch && *arch) {
      b_str(o, ",\"arch\":");
      b_json_str(o, arch);
    }
  } else {
    b_str(o, ",\"scope\":\"global\"");
    if (global_dir) {
      b_str(o, ",\"global_dir\":");
      b_json_str(o, global_dir);
    }
    if (host_only) b_str(o, ",\"host_only\":true");
  }
  b_str(o, "}");
  return 1;
}

static void json_list(buf *o, const optval *v) {
  b_str(o, "[");
  for (int i = 0; i < v->n; i++) {
    if (i) b_str(o, ",");
    b_json_str(o, v->list[i]);
  }
  b_str(o, "]");
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static char *default_user_socket(void) {
  const char *rt = env("XDG_RUNTIME_DIR");
  if (rt && rt[0] == '/') return join2(rt, "lockd/lockd.sock");
  const char *tmp = env("TMPDIR");
  if (!tmp) tmp = env("TMP");
  if (!tmp) tmp = env("TEMP");
  if (!tmp) tmp = "/tmp";
  if (tmp[0] != '/') return NULL; /* os.tmpdir() of a relative TMPDIR: leave it to Node */
  buf b = {0};
  b_printf(&b, "%s/lockd-%ld/lockd.sock", tmp, (long)getuid());
  char *r = resolve_path("/", b.p);
  b_free(&b);
  return r;
}

/* src/cli/pools-arg.ts NAME: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/. */
static int pool_name(const char *s, size_t n) {
  if (n == 0 || n > 128 || !isalnum((unsigned char)s[0])) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) return 0;
  }
  return 1;
}

/* A string's length in UTF-16 units, as JavaScript's .length counts it (for valid UTF-8). */
static size_t js_length(const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p & 0xC0) == 0x80) continue;
    n += *p >= 0xF0 ? 2 : 1;
  }
  return n;
}

/*
 * The pools of src/cli/pools-arg.ts poolRefs, appended to the request as `,"pools":[...]`, and their labels to the
 * waiting line's names (run.ts poolLabel: boards:2[arch=arm64], boards/rpi4-a). 0 when Node would refuse them, or
 * would build them differently (an object key JavaScript orders or treats specially): a hand-over, Node says why.
 */
static int pool_refs(buf *o, const optval *pools, const optval *where, const char *member, buf *names) {
  if ((where->n > 0 || member) && pools->n != 1) return 0;
  if (member && !pool_name(member, strlen(member))) return 0;
  buf cond = {0}, label = {0};
  b_put(&cond, "", 0);
  b_put(&label, "", 0);
  int ok = 0;
  /* Keys in first-insertion order, the last value winning: a JavaScript object built key by key. */
  for (int i = 0; i < where->n; i++) {
    const char *w = where->list[i], *eq = strchr(w, '=');
    if (!eq || eq == w) goto out;
    size_t kl = (size_t)(eq - w);
    int digits = 1;
    for (size_t k = 0; k < kl; k++)
      if (!isdigit((unsigned char)w[k])) digits = 0;
    if (digits || (kl == 9 && strncmp(w, "__proto__", 9) == 0)) goto out;
    for (int j = 0; j < i; j++)
      if (strncmp(where->list[j], w, kl + 1) == 0) goto out; /* a repeated key: left to Node's object rules */
    if (cond.n) b_str(&cond, ","), b_str(&label, ",");
    char *key = xmalloc(kl + 1);
    memcpy(key, w, kl);
    key[kl] = '\0';
    b_json_str(&cond, key);
    b_str(&cond, ":");
    b_json_str(&cond, eq + 1);
    b_printf(&label, "%s=%s", key, eq + 1);
    free(key);
  }
  if (pools->n == 0) {
    ok = 1;
    goto out;
  }
  b_str(o, ",\"pools\":[");
  for (int i = 0; i < pools->n; i++) {
    const char *spec = pools->list[i], *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (!pool_name(spec, nl)) goto out;
    long count = 1;
    if (colon && !int_opt(colon + 1, 1, 100000, &count)) goto out;
    for (int j = 0; j < i; j++) {
      const char *prev = pools->list[j], *pc = strchr(prev, ':');
      size_t pl = pc ? (size_t)(pc - prev) : strlen(prev);
      if (pl == nl && strncmp(prev, spec, nl) == 0) goto out;
    }
    char *name = xmalloc(nl + 1);
    memcpy(name, spec, nl);
    name[nl] = '\0';
    if (i) b_str(o, ",");
    b_str(o, "{\"pool\":");
    b_json_str(o, name);
    b_printf(o, ",\"count\":%ld,\"where\":{%s},\"member\":", count, cond.p);
    if (member) b_json_str(o, member);
    else b_str(o, "null");
    b_str(o, "}");
    if (names->n) b_str(names, ", ");
    if (member) b_printf(names, "%s/%s", name, member);
    else b_printf(names, "%s:%ld", name, count);
    if (label.n) b_printf(names, "[%s]", label.p);
    free(name);
  }
  b_str(o, "]");
  ok = 1;
out:
  b_free(&cond), b_free(&label);
  return ok;
}

/* --priority as parseIntOption reads it (-1000000..1000000), for the plain decimal forms only. */
static int priority_opt(const char *v, long *out) {
  int neg = v[0] == '-';
  long x;
  if (!int_opt(v + neg, 0, 1000000, &x)) return 0;
  *out = neg ? -x : x;
  return 1;
}

/* Settings.get: the flag, else the variable (set and not empty), else the lockd.json files; *why on a hand-over. */
static const char *setting(const char *flag, const char *var, const char *key, const config_file *br, const config_file *sd, const char **why) {
  if (flag) return flag;
  const char *e = env(var);
  if (e) return e;
  return config_value(br, sd, key, why);
}

#define HANDOVER(why)       \
  do {                      \
    out->handover = (why);  \
    goto done;              \
  } while (0)

void build_request(int argc, char **argv, run_args *out) {
  memset(out, 0, sizeof *out);
  optval vals[NOPTS];
  memset(vals, 0, sizeof vals);
  buf names = {0};
  char *cwd = NULL, *root = NULL, *holder = NULL, *user = NULL, *state_dir = NULL, *cfg = NULL;
  config_file br_cfg = {0}, sd_cfg = {0};
  const char *why = NULL;
  char *global_dir = NULL, *runs_root = NULL, *log_path = NULL;
  int i = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || strcmp(a, "-") == 0) break;
    int k;
    const char *value = NULL;
    if (a[1] == '-') {
      const char *eq = strchr(a + 2, '=');
      k = find_opt(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
      if (k < 0) HANDOVER("an option this client does not handle");
      if (OPTS[k].type == O_BOOL) {
        if (eq) HANDOVER("a value given to a boolean option");
        value = "1";
      } else if (eq) value = eq + 1;
      else {
        if (i + 1 >= argc) HANDOVER("an option without its value");
        value = argv[++i];
        if (value[0] == '-') HANDOVER("an option value that starts with '-'");
      }
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "-i") == 0) {
      k = opt_index(a[1] == 'q' ? "quiet" : "interactive");
      value = "1";
    } else HANDOVER("a short option this client does not handle");
    optval *v = &vals[k];
    v->value = value;
    if (OPTS[k].multi) {
      if (v->n >= MAX_MULTI) HANDOVER("too many repeated options");
      v->list[v->n++] = value;
    }
  }
  if (i >= argc) HANDOVER("no command (the Node CLI prints the usage error)");
  char **command = argv + i;
  int ncommand = argc - i;

#define V(name) (vals[opt_index(name)].value)
#define L(name) (&vals[opt_index(name)])
  cwd = getcwd(NULL, 0);
  if (!cwd) HANDOVER("no current directory");

  /* Settings (src/cli/settings.ts): flag > environment > lockd.json > default. A lockd.json is read only by Node. */
  if ((V("socket") && !*V("socket")) || (V("state-dir") && !*V("state-dir"))) HANDOVER("an empty --socket or --state-dir");
  const char *sd = V("state-dir") ? V("state-dir") : env("LOCKD_STATE_DIR");
  if (sd) state_dir = resolve_path(cwd, sd);
  else if (env("XDG_STATE_HOME") && env("XDG_STATE_HOME")[0] == '/') state_dir = join2(env("XDG_STATE_HOME"), "lockd");
  else if (env("HOME")) state_dir = join2(env("HOME"), ".local/state/lockd");
  else HANDOVER("no HOME");
  const char *br = V("root") ? V("root") : env("LOCKD_BUILD_ROOT");
  int root_given = br != NULL;
  root = resolve_path(cwd, br ? br : cwd);
  cfg = join2(root, "lockd.json");
  if ((why = config_read(&br_cfg, cfg))) HANDOVER(why);
  free(cfg);
  cfg = join2(state_dir, "lockd.json");
  /* The same file twice (the build root is the state dir): Node reads it twice too, with the same result. */
  if ((why = config_read(&sd_cfg, cfg))) HANDOVER(why);
#define S(flag, var, key) setting((flag) ? V(flag) : NULL, var, key, &br_cfg, &sd_cfg, &why)
#define CHECK_WHY() \
  if (why) HANDOVER(why)
  if (S(NULL, "LOCKD_LOG_MAX_BYTES", "log_max_bytes")) HANDOVER("a log_max_bytes setting (Node caps the log)");
  CHECK_WHY();

  const char *sock = S("socket", "LOCKD_SOCKET", "socket");
  CHECK_WHY();
  if (sock) out->socket_path = resolve_path(cwd, sock);
  else {
    char *u = default_user_socket();
    if (!u) HANDOVER("a relative TMPDIR");
    if (!exists(u) && exists("/run/lockd/lockd.sock")) {
      free(u);
      u = xstrdup("/run/lockd/lockd.sock");
    }
    out->socket_path = u;
  }
  if (strlen(out->socket_path) > 107) HANDOVER("a socket path over the Unix limit (Node says so)");
  const char *na = S(NULL, "LOCKD_NO_AUTOSTART", "no_autostart");
  CHECK_WHY();
  out->autostart = !(na && (!strcmp(na, "1") || !strcmp(na, "true") || !strcmp(na, "yes")));

  const char *arch = V("arch");
  if (arch && (!good_name(arch, strlen(arch)))) HANDOVER("an invalid --arch (Node says why)");
  const char *gd = S("global-dir", "LOCKD_GLOBAL_DIR", "global_dir");
  CHECK_WHY();
  if (gd && *gd) global_dir = resolve_path(cwd, gd);

  buf *o = &out->json;
  b_str(o, "{\"argv\":[");
  for (int c = 0; c < ncommand; c++) {
    if (c) b_str(o, ",");
    b_json_str(o, command[c]);
  }
  b_str(o, "],\"cwd\":");
  b_json_str(o, cwd);
  b_str(o, ",\"env\":{");
  int first = 1;
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || eq == *e) continue;
    char *key = xmalloc((size_t)(eq - *e) + 1);
    memcpy(key, *e, (size_t)(eq - *e));
    key[eq - *e] = '\0';
    if (getenv(key) != eq + 1) {
      /* a duplicate name: getenv (and Node) see the first one only */
      free(key);
      continue;
    }
    if (!first) b_str(o, ",");
    first = 0;
    b_json_str(o, key);
    b_str(o, ":");
    b_json_str(o, eq + 1);
    free(key);
  }
  b_str(o, "},\"locks\":[");
  int nl = 0, any_local = 0;
  const optval *locks = L("lock"), *globals = L("global");
  for (int k = 0; k < locks->n; k++, nl++) {
    if (nl) b_str(o, ",");
    if (!lock_ref(o, locks->list[k], 0, root, arch, NULL, 0, &names)) HANDOVER("an invalid lock (Node says why)");
    any_local = 1;
  }
  for (int k = 0; k < globals->n; k++, nl++) {
    if (nl) b_str(o, ",");
    if (!lock_ref(o, globals->list[k], 1, root, arch, global_dir, V("host-only") != NULL, &names)) HANDOVER("an invalid lock (Node says why)");
  }
  b_str(o, "]");

  long long ms;
  const char *wait = S("wait", "LOCKD_WAIT", "wait");
  CHECK_WHY();
  if (wait) {
    if (!seconds_ms(wait, 1, 0, &ms)) HANDOVER("a --wait this client does not parse");
  } else ms = in_ci() ? 1800000 : 0;
  if (ms < 0) b_str(o, ",\"wait_ms\":null");
  else b_printf(o, ",\"wait_ms\":%lld", ms);
  out->wait_ms = ms;
  const char *timeout = S("timeout", "LOCKD_TIMEOUT", "timeout");
  CHECK_WHY();
  if (!timeout) b_str(o, ",\"timeout_ms\":null");
  else if (!seconds_ms(timeout, 1, 1, &ms)) HANDOVER("a --timeout this client does not parse");
  else if (ms < 0) b_str(o, ",\"timeout_ms\":null");
  else b_printf(o, ",\"timeout_ms\":%lld", ms);
  const char *ka = S("kill-after", "LOCKD_KILL_AFTER", "kill_after");
  CHECK_WHY();
  if (!seconds_ms(ka ? ka : "5", 0, 0, &ms)) HANDOVER("a --kill-after this client does not parse");
  b_printf(o, ",\"kill_after_ms\":%lld", ms);
  out->detach = V("detach") != NULL;
  out->interactive = V("interactive") != NULL;
  if (out->interactive && fcntl(0, F_GETFD) < 0) HANDOVER("-i without a stdin");
  b_printf(o, ",\"interactive\":%s,\"detach\":%s", out->interactive ? "true" : "false", out->detach ? "true" : "false");
  b_str(o, ",\"run_id\":");
  if (V("run-id")) b_json_str(o, V("run-id"));
  else b_str(o, "null");
  const char *rr = S("runs-root", "LOCKD_RUNS_ROOT", "runs_root");
  CHECK_WHY();
  if (rr && *rr) runs_root = resolve_path(cwd, rr);
  else if (root_given) runs_root = join2(root, "runs");
  b_str(o, ",\"runs_root\":");
  if (runs_root) b_json_str(o, runs_root);
  else b_str(o, "null");
  b_str(o, ",\"build_root\":");
  if (any_local || root_given) b_json_str(o, root);
  else b_str(o, "null");
  b_str(o, ",\"arch\":");
  if (arch) b_json_str(o, arch);
  else b_str(o, "null");
  b_str(o, ",\"log_path\":");
  if (V("log") && *V("log")) {
    log_path = resolve_path(cwd, V("log"));
    b_json_str(o, log_path);
  } else b_str(o, "null");
  b_str(o, ",\"log_max_bytes\":null");
  b_printf(o, ",\"verdict\":{\"require_structured\":%s,\"require_marker\":", V("require-structured") ? "true" : "false");
  json_list(o, L("require-marker"));
  b_str(o, ",\"require_all\":");
  json_list(o, L("require-all"));
  b_str(o, ",\"forbid_marker\":");
  json_list(o, L("forbid-marker"));
  b_printf(o, ",\"expect_timeout\":%s}", V("expect-timeout") ? "true" : "false");
  long n;
  const char *keep = S("keep", "LOCKD_RUNS_KEEP", "keep");
  CHECK_WHY();
  if (!int_opt(keep ? keep : "20", 0, 999999999, &n)) HANDOVER("a --keep this client does not parse");
  b_printf(o, ",\"keep\":%ld", n);
  const char *cec = S("conflict-exit-code", "LOCKD_CONFLICT_EXIT_CODE", "conflict_exit_code");
  CHECK_WHY();
  if (!int_opt(cec ? cec : "75", 0, 255, &n)) HANDOVER("a --conflict-exit-code this client does not parse");
  b_printf(o, ",\"conflict_exit_code\":%ld", n);
  user = current_user();
  const char *h = S("holder", "LOCKD_HOLDER", "holder");
  CHECK_WHY();
  if (h) holder = xstrdup(h);
  else {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) HANDOVER("no host name");
    holder = holder_string((long)getpid(), host, user);
    if (!holder) HANDOVER("a CI variable with non-ASCII at an end (JavaScript trims it)");
  }
  b_str(o, ",\"holder\":");
  b_json_str(o, holder);
  b_str(o, ",\"user\":");
  b_json_str(o, user);
  b_printf(o, ",\"client_pid\":%ld,\"parent_run_id\":", (long)getpid());
  const char *parent = getenv("LOCKD_RUN_ID");
  if (parent) b_json_str(o, parent);
  else b_str(o, "null");
  const char *hold = V("hold") ? V("hold") : env("LOCKD_HOLD_ID");
  if (hold && *hold) {
    b_str(o, ",\"hold_id\":");
    b_json_str(o, hold);
  }
  const char *oll = S("on-lock-lost", "LOCKD_ON_LOCK_LOST", "on_lock_lost");
  CHECK_WHY();
  if (oll) {
    if (strcmp(oll, "stop") && strcmp(oll, "warn")) HANDOVER("an invalid --on-lock-lost (Node says why)");
    b_str(o, ",\"on_lock_lost\":");
    b_json_str(o, oll);
  }
  if (!pool_refs(o, L("pool"), L("where"), V("member"), &names)) HANDOVER("a pool request Node would refuse or build differently (Node says why)");
  if (L("pool")->n > 0) out->needs_pools = 1;
  if (V("priority")) {
    long prio;
    if (!priority_opt(V("priority"), &prio)) HANDOVER("a --priority this client does not parse");
    b_printf(o, ",\"priority\":%ld", prio);
    if (prio != 0) out->needs_pools = 1;
  }
  if (V("cancel-running") && !V("supersede")) HANDOVER("--cancel-running without --supersede (Node says why)");
  if (V("supersede")) {
    size_t len = js_length(V("supersede"));
    if (len == 0 || len > 256) HANDOVER("a --supersede KEY Node would refuse (Node says why)");
    b_str(o, ",\"supersede\":");
    b_json_str(o, V("supersede"));
    if (V("cancel-running")) b_str(o, ",\"cancel_running\":true");
    out->needs_supersede = 1;
  }
  /* run.ts: without a terminal (and not quiet) the daemon is asked for progress messages every --progress-interval. */
  const char *pi = S("progress-interval", "LOCKD_PROGRESS_INTERVAL", "progress_interval");
  CHECK_WHY();
  if (!seconds_ms(pi ? pi : "60", 1, 0, &ms)) HANDOVER("a --progress-interval this client does not parse");
  if (ms == 0 && strtod(pi ? pi : "60", NULL) != 0) HANDOVER("a --progress-interval under a millisecond");
  if (ms > 0 && !V("quiet") && !(isatty(2) && !out->detach)) b_printf(o, ",\"progress_ms\":%lld", ms < 1 ? 1 : ms);
  const char *stdio = getenv("LOCKD_STDIO");
  out->framed = stdio && strcmp(stdio, "framed") == 0;
  b_printf(o, ",\"stdio\":\"%s\"}", out->framed ? "framed" : "fds");
  out->result_fd = -1;
  if (V("result-fd")) {
    long fd;
    if (!int_opt(V("result-fd"), 0, 65535, &fd)) HANDOVER("a --result-fd this client does not parse");
    /* A descriptor that is not open: the Node CLI's own message for the failed write, not ours. */
    if (fcntl((int)fd, F_GETFD) < 0) HANDOVER("a --result-fd that is not open");
    out->result_fd = (int)fd;
  }
  out->quiet = V("quiet") != NULL;
  out->names = xstrdup(names.p ? names.p : "");
done:
  b_free(&names);
  free(cwd), free(root), free(holder), free(user), free(state_dir), free(cfg), free(global_dir), free(runs_root), free(log_path);
  config_free(&br_cfg), config_free(&sd_cfg);
}
