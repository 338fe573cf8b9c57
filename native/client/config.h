/*
 * The `lockd.json` files a `lockd run` reads (src/cli/settings.ts): a setting comes from the flag, else its LOCKD_*
 * variable, else the build root's lockd.json, else the state dir's. This client reads them itself, so a configured
 * host keeps the fast path; whatever it cannot reproduce exactly (a file Node would warn about, a value whose
 * String(v) it would spell differently) is a hand-over, and the Node CLI reads the file instead.
 */
#ifndef LOCKD_FAST_CONFIG_H
#define LOCKD_FAST_CONFIG_H
#include "json.h"

typedef struct {
  char *text;
  jv *root; /* the parsed object; NULL when there is no such file (or it is not an object: Node ignores it too) */
} config_file;

/* Read `path` into `c`. NULL when it can be used (or does not exist), else why it is a hand-over. */
const char *config_read(config_file *c, const char *path);
void config_free(config_file *c);
/*
 * The setting `key` as Settings.get resolves it below the flag and the environment: the build root's file, then the
 * state dir's. NULL when neither sets it. *why is set (and NULL returned) when a value is one this client does not
 * spell as JavaScript's String(v) would.
 */
const char *config_value(const config_file *build_root, const config_file *state_dir, const char *key, const char **why);

#endif
