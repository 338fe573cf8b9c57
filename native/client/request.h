/*
 * `lockd run [options] [--] COMMAND...` → the run request's JSON, exactly as src/cli/commands/run.ts builds it
 * (buildRunRequest), for the options a wrapper uses. Anything this client does not reproduce byte for byte (an
 * option it does not know, a value Node would parse differently, a lockd.json that could change a setting) is a
 * hand-over: the Node CLI runs instead, with the same argv, so behaviour never differs.
 */
#ifndef LOCKD_FAST_REQUEST_H
#define LOCKD_FAST_REQUEST_H
#include "buf.h"

typedef struct {
  buf json;          /* the RunRequest object */
  char *socket_path; /* resolved like src/util/paths.ts resolveSocket */
  int autostart;
  int quiet;
  int detach;
  int interactive;   /* -i: stdin is passed too (or forwarded in stdin frames when the daemon declines descriptors) */
  int framed;        /* LOCKD_STDIO=framed: ask for data frames instead of passing descriptors */
  int result_fd;     /* --result-fd N, else -1 */
  long long wait_ms; /* the request's wait_ms; -1 = forever */
  char *names;       /* lock names and pool labels joined by ", " (the waiting line) */
  int needs_pools;   /* the daemon must have hello_ok feature "pools" (else the request means less than it says) */
  int needs_supersede; /* ... and "supersede" */
  const char *handover; /* non-NULL: why the Node CLI must do this one */
} run_args;

/* argv after "run". Fills `out`; sets out->handover instead of failing. */
void build_request(int argc, char **argv, run_args *out);
/* The holder string of src/client/holder.ts holderString (CI-aware), for this pid, host and user. */
char *holder_string(long pid, const char *host, const char *user);
/* src/client/holder.ts detectCi: 1 when a CI environment is detected. */
int in_ci(void);
/* path.resolve(base, p): absolute, normalized (no ., .., //, trailing /). */
char *resolve_path(const char *base, const char *p);

#endif
