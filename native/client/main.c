/*
 * lockd-fast: the native fast path of `lockd run` (issue 20). It does what src/cli/commands/run.ts does for the
 * options a wrapper uses, without starting Node: build the request (request.c), connect, send hello and run in one
 * write, pass our own stdout/stderr with SCM_RIGHTS when the daemon asks for them, print the daemon's progress
 * with the lines of the shared table (run-text.h, generated from src/client/run-text.ts), forward signals, and
 * exit with the job's code. Everything else is handed to the Node CLI with execvp before a byte is sent, so
 * behaviour never differs, only speed: another verb, an option or value it does not reproduce, no daemon
 * answering (Node auto-starts one), a daemon of another protocol version.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "request.h"
#include "run-text.h"
#include "wire.h"

static char **orig_argv;

/* ---- hand-over to the Node CLI ---------------------------------------------------------------------- */

/* bin/lockd.js above our own executable (prebuilds/<platform>/lockd-fast, build/lockd-fast). */
static char *node_cli(void) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) self[n] = '\0';
  else if (!realpath(orig_argv[0], self)) return NULL;
  char *dir = self;
  for (int up = 0; up < 5; up++) {
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return NULL;
    *slash = '\0';
    buf b = {0};
    b_printf(&b, "%s/bin/lockd.js", dir);
    if (access(b.p, R_OK) == 0) return b.p;
    b_free(&b);
  }
  return NULL;
}

static void __attribute__((noreturn)) handover(const char *why) {
  if (getenv("LOCKD_FAST_DEBUG")) dprintf(2, "lockd-fast: handing over to the Node CLI: %s\n", why);
  const char *cli = getenv("LOCKD_FAST_NODE_CLI");
  char *found = cli ? NULL : node_cli();
  if (!cli) cli = found;
  if (!cli) {
    dprintf(2, "lockd: cannot find the Node CLI (bin/lockd.js) next to %s; set LOCKD_FAST_NODE_CLI\n", orig_argv[0]);
    exit(EXIT_LOCKD_FAILED);
  }
  const char *node = getenv("LOCKD_NODE");
  if (!node || !*node) node = "node";
  int argc = 0;
  while (orig_argv[argc]) argc++;
  char **av = xmalloc(sizeof(char *) * (size_t)(argc + 2));
  av[0] = (char *)node;
  av[1] = (char *)cli;
  for (int i = 1; i <= argc; i++) av[i + 1] = orig_argv[i];
  signal(SIGPIPE, SIG_DFL);
  execvp(node, av);
  dprintf(2, "lockd: cannot start the Node CLI (%s %s): %s\n", node, cli, strerror(errno));
  exit(EXIT_LOCKD_FAILED);
}

/* ---- output ----------------------------------------------------------------------------------------- */

static int quiet;

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pf = {fd, POLLOUT, 0};
      poll(&pf, 1, -1);
      continue;
    }
    if (w <= 0) return; /* a reader that went away: nothing more to tell it */
    p += w;
    n -= (size_t)w;
  }
}

/* write_all for a descriptor the user named: 0, or -1 with errno. */
static int write_fully(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Fill a template's {name} placeholders (the C twin of fill() in src/client/run-text.ts). */
static void fill(buf *o, const char *t, const char *const *kv) {
  while (*t) {
    const char *close = t[0] == '{' ? strchr(t, '}') : NULL;
    if (close) {
      size_t n = (size_t)(close - t - 1);
      const char *const *p = kv;
      for (; *p; p += 2)
        if (strlen(p[0]) == n && strncmp(p[0], t + 1, n) == 0) break;
      if (*p) {
        b_str(o, p[1]);
        t = close + 1;
        continue;
      }
    }
    b_put(o, t, 1);
    t++;
  }
}

/* `lockd: <line>\n` on stderr; `always` for the lines -q does not silence. */
static void say(int always, const char *t, const char *const *kv) {
  if (quiet && !always) return;
  buf o = {0};
  b_str(&o, "lockd: ");
  fill(&o, t, kv);
  b_str(&o, "\n");
  write_all(2, o.p, o.n);
  b_free(&o);
}

static int in_list(const char *const *list, const char *s) {
  for (; *list; list++)
    if (strcmp(*list, s) == 0) return 1;
  return 0;
}

static int exit_code_for(const char *code) {
  if (in_list(USAGE_ERROR_CODES, code)) return EXIT_USAGE;
  if (in_list(NOT_OBTAINED_ERROR_CODES, code)) return EXIT_NOT_OBTAINED;
  return EXIT_LOCKD_FAILED;
}

/* hello_ok `features` names `f`. */
static int has_feature(const jv *hello_ok, const char *f) {
  const jv *list = json_get(hello_ok, "features");
  if (!list || list->type != J_ARR) return 0;
  for (const jv *e = list->first; e; e = e->next)
    if (e->type == J_STR && strcmp(e->str, f) == 0) return 1;
  return 0;
}

static void __attribute__((noreturn)) protocol_error(const char *what) {
  dprintf(2, "lockd: protocol error from the lockd daemon: %s\n", what);
  exit(EXIT_LOCKD_FAILED);
}

/* A JavaScript string's .slice(0, max) of UTF-8 text: max UTF-16 units; a cut astral character becomes U+FFFD. */
static void js_slice(buf *o, const char *s, size_t max) {
  size_t units = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p && units < max) {
    size_t len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 1;
    for (size_t i = 1; i < len; i++)
      if ((p[i] & 0xc0) != 0x80) len = 1;
    if (len == 4 && units + 2 > max) {
      b_str(o, "\xef\xbf\xbd");
      return;
    }
    b_put(o, p, len);
    units += len == 4 ? 2 : 1;
    p += len;
  }
}

/* ---- the run ---------------------------------------------------------------------------------------- */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;
  ssize_t r = write(sig_pipe[1], &b, 1);
  (void)r;
  errno = saved;
}

/* Date.now(): whole milliseconds of wall-clock time (the progress line's elapsed time and deadline). */
static double wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

typedef struct {
  run_args *ra;
  int tty;
  int manifest_shown;
  int live_line;
  double waiting_since; /* < 0: never queued */
  double waiting_since_wall; /* the same moment as Date.now() would give it */
  int started;          /* launching (or later) seen: a lost daemon is never retried */
  int tty_job;          /* started said the job writes into a pty: terminal resizes are passed on */
  int winch_pending;    /* the terminal was resized before `started` came */
  char *result_path;
  /* signals that arrived before the stream was settled */
  const char *pending[16];
  int npending;
  double last_sigint;
} run_state;

static void show_manifest(run_state *st, const char *path) {
  if (st->manifest_shown || !path) return;
  st->manifest_shown = 1;
  const char *kv[] = {"path", path, 0};
  say(0, TEXT_MANIFEST, kv);
}

static void clear_live_line(run_state *st) {
  if (!st->live_line) return;
  write_all(2, "\r\x1b[K", 4);
  st->live_line = 0;
}

static void set_result_path(run_state *st, const char *p) {
  if (!p) return;
  free(st->result_path);
  st->result_path = xstrdup(p);
}

/* TEXT_BLOCKER for the first of a message's blockers into `blockers` (left empty when there is none). */
static void blocker_text(buf *blockers, const jv *m) {
  buf pid = {0}, cmd = {0};
  b_put(blockers, "", 0);
  const jv *list = json_get(m, "blockers");
  const jv *b = list && list->type == J_ARR ? list->first : NULL;
  if (b && b->type == J_OBJ) {
    const jv *p = json_get(b, "pid");
    if (p && p->type == J_NUM && p->num != 0) {
      buf n = {0};
      b_printf(&n, "%.0f", p->num);
      const char *kv[] = {"pid", n.p, 0};
      fill(&pid, TEXT_BLOCKER_PID, kv);
      b_free(&n);
    }
    const char *cl = json_str(b, "command_line");
    if (cl && *cl) {
      buf s = {0};
      b_put(&s, "", 0);
      js_slice(&s, cl, BLOCKER_COMMAND_MAX);
      const char *kv[] = {"command", s.p, 0};
      fill(&cmd, TEXT_BLOCKER_COMMAND, kv);
      b_free(&s);
    }
    const char *kind = json_str(b, "kind"), *id = json_str(b, "id"), *holder = json_str(b, "holder");
    const char *kv[] = {"kind", kind ? kind : "", "id", id ? id : "", "pid", pid.p ? pid.p : "", "holder", holder ? holder : "", "command", cmd.p ? cmd.p : "", 0};
    fill(blockers, TEXT_BLOCKER, kv);
  }
  b_free(&pid), b_free(&cmd);
}

static void waiting_line(run_state *st, const jv *m, int live) {
  buf blockers = {0}, pos = {0};
  b_printf(&pos, "%.0f", json_num(m, "position", 0));
  blocker_text(&blockers, m);
  const char *kv[] = {"names", st->ra->names, "position", pos.p, "blockers", blockers.p, 0};
  if (live) {
    buf o = {0};
    b_str(&o, "\rlockd: ");
    fill(&o, TEXT_WAITING, kv);
    b_str(&o, "\x1b[K");
    write_all(2, o.p, o.n);
    b_free(&o);
    st->live_line = 1;
  } else say(0, TEXT_WAITING, kv);
  b_free(&blockers), b_free(&pos);
}

/* cli/render/format.ts formatDuration, for whole milliseconds: 4.2s, 42s, 3m 07s, 5h 03m, 2d 4h. */
static void fmt_duration(buf *o, long long ms) {
  if (ms < 0) ms = 0;
  if (ms < 10000) {
    /* (ms / 1000).toFixed(1): the double's exact value rounded to one decimal, an exact tie to the larger (printf
     * would round a tie to even: 0.25 is "0.3" in JavaScript, "0.2" from %.1f). */
    double x = (double)ms / 1000;
    char exact[80];
    snprintf(exact, sizeof exact, "%.60f", x);
    const char *dot = strchr(exact, '.');
    int tie = dot && dot[1] && dot[2] == '5';
    for (const char *c = dot ? dot + 3 : ""; tie && *c; c++)
      if (*c != '0') tie = 0;
    if (tie) x += 0.05;
    b_printf(o, "%.1fs", x);
    return;
  }
  long long s = (ms + 500) / 1000; /* Math.round */
  if (s < 60) b_printf(o, "%llds", s);
  else if (s / 60 < 60) b_printf(o, "%lldm %02llds", s / 60, s % 60);
  else if (s / 3600 < 48) b_printf(o, "%lldh %02lldm", s / 3600, (s / 60) % 60);
  else b_printf(o, "%lldd %lldh", s / 86400, (s / 3600) % 24);
}

/* The daemon's `progress` message as the "still waiting" line (cli/render/wait-progress.ts progressLine). */
static void progress_line(run_state *st, const jv *m) {
  if (st->waiting_since < 0) return;
  double now = wall_ms();
  long long elapsed = (long long)(now - st->waiting_since_wall);
  buf el = {0}, pos = {0}, bl = {0}, eta = {0}, dl = {0};
  fmt_duration(&el, elapsed);
  b_printf(&pos, "%.0f", json_num(m, "position", 0));
  blocker_text(&bl, m);
  const char *blocker = bl.n > 0 ? bl.p + 1 : TEXT_PROGRESS_NO_BLOCKER; /* BLOCKER_TEXT without its leading space */
  const jv *e = json_get(m, "eta_ms");
  if (!e || e->type != J_NUM || !(e->num >= 0 && e->num < 9e15)) b_str(&eta, ETA_UNKNOWN);
  else if (e->num < 1000) b_str(&eta, ETA_SOON);
  else {
    buf d = {0};
    fmt_duration(&d, (long long)e->num);
    const char *kv[] = {"duration", d.p, 0};
    fill(&eta, ETA_ESTIMATE, kv);
    b_free(&d);
  }
  if (st->ra->wait_ms < 0) b_str(&dl, TEXT_PROGRESS_NO_DEADLINE);
  else {
    double deadline = st->waiting_since_wall + (double)st->ra->wait_ms;
    buf left = {0};
    fmt_duration(&left, deadline - now > 0 ? (long long)(deadline - now) : 0);
    time_t secs = (time_t)(deadline / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char clock[16];
    snprintf(clock, sizeof clock, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
    const char *kv[] = {"left", left.p, "clock", clock, 0};
    fill(&dl, TEXT_PROGRESS_DEADLINE, kv);
    b_free(&left);
  }
  const char *kv[] = {"names", st->ra->names, "elapsed", el.p, "position", pos.p, "blocker", blocker, "eta", eta.p, "deadline", dl.p, 0};
  say(0, TEXT_PROGRESS, kv);
  b_free(&el), b_free(&pos), b_free(&bl), b_free(&eta), b_free(&dl);
}

static void send_signal(int sock, const char *name) {
  buf j = {0};
  b_printf(&j, "{\"type\":\"signal\",\"signal\":\"%s\"}", name);
  send_json(sock, j.p, j.n);
  b_free(&j);
}

/* The caller's terminal size to the job's pty (docs/protocol.md, `resize`). */
static void send_resize(int sock) {
  struct winsize ws;
  if (ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0 || ws.ws_row == 0) return;
  buf j = {0};
  b_printf(&j, "{\"type\":\"resize\",\"cols\":%u,\"rows\":%u}", (unsigned)ws.ws_col, (unsigned)ws.ws_row);
  send_json(sock, j.p, j.n);
  b_free(&j);
}

enum { OUT_CONTINUE, OUT_LOST };

/* One connection: returns only when it was lost (the caller retries or reports); every other end exits. */
static int converse(run_state *st, int attempt) {
  int sock = connect_unix(st->ra->socket_path);
  if (sock < 0) handover(attempt == 1 ? "no daemon answers on the socket (the Node CLI starts one or says why)" : "the daemon is gone (the Node CLI starts one or says why)");
  buf hello = {0};
  b_printf(&hello, "{\"type\":\"hello\",\"protocol\":%d,\"client_version\":\"%s\",\"pid\":%ld}", PROTOCOL_VERSION, LOCKD_VERSION, (long)getpid());
  buf run = {0};
  b_str(&run, "{\"type\":\"run\",\"req\":");
  b_put(&run, st->ra->json.p, st->ra->json.n);
  b_str(&run, "}");
  /* A request an older daemon would half-understand (it ignores unknown fields) waits for hello_ok's features, as
   * the Node client's does (client/connection.ts featuresNeeded): one round trip more, only for such requests. */
  int gated = st->ra->needs_pools || st->ra->needs_supersede;
  if ((gated ? send_json(sock, hello.p, hello.n) : send_two_json(sock, hello.p, hello.n, run.p, run.n)) != 0) {
    close(sock);
    handover("the daemon closed the socket before the request was written");
  }
  b_free(&hello);

  frame_reader fr;
  reader_init(&fr);
  int got_hello = 0, ready = 0, got_bytes = 0;
  /* -i on the framed stream: our stdin goes to the job in stdin frames, then stdin_end (the Node client's forwardStdin). */
  int stdin_open = 0;
  for (;;) {
    frame f;
    int r = reader_next(&fr, &f);
    if (r == FRAME_ERROR) protocol_error(fr.error);
    if (r == FRAME_NONE) {
      struct pollfd pf[3] = {{sock, POLLIN, 0}, {sig_pipe[0], POLLIN, 0}, {0, POLLIN, 0}};
      if (poll(pf, stdin_open ? 3 : 2, -1) < 0) {
        if (errno == EINTR) continue;
        protocol_error(strerror(errno));
      }
      if (pf[1].revents & POLLIN) {
        unsigned char s;
        while (read(sig_pipe[0], &s, 1) == 1) {
          if (s == SIGWINCH) {
            /* The caller's terminal was resized: passed on only to a job that writes into a pty (the Node client's rule). */
            if (ready && st->tty_job) send_resize(sock);
            /* Before `started` (the job may already run: `launching` comes first): passed on when `started` says tty. */
            else if (!st->started || !st->tty_job) st->winch_pending = 1;
            continue;
          }
          const char *name = s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : s == SIGHUP ? "SIGHUP" : "SIGQUIT";
          if (s == SIGINT) {
            double t = now_ms();
            if (t - st->last_sigint < 3000) name = "SIGKILL";
            st->last_sigint = t;
          }
          if (ready) send_signal(sock, name);
          else if (st->npending < 16) st->pending[st->npending++] = name;
        }
      }
      if (stdin_open && (pf[2].revents & (POLLIN | POLLHUP | POLLERR))) {
        char in[65536];
        ssize_t n = read(0, in, sizeof in);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n > 0) send_frame(sock, KIND_STDIN, in, (size_t)n);
        else {
          static const char end[] = "{\"type\":\"stdin_end\"}";
          send_json(sock, end, sizeof end - 1);
          stdin_open = 0;
        }
      }
      if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        int n = reader_fill(&fr, sock);
        if (n > 0) {
          got_bytes = 1;
          continue;
        }
        /* EOF (or a reset): the daemon is gone. */
        close(sock);
        reader_free(&fr);
        if (!got_hello) {
          if (!got_bytes) handover("the daemon closed the connection before answering (it never read the request)");
          say(1, TEXT_LOST_HANDSHAKE, (const char *const[]){0});
          exit(EXIT_LOCKD_FAILED);
        }
        return OUT_LOST;
      }
      continue;
    }
    if (f.kind == KIND_STDOUT || f.kind == KIND_STDERR) {
      write_all(f.kind == KIND_STDOUT ? 1 : 2, f.data, f.len);
      continue;
    }
    jv *m = json_parse(f.data, f.len);
    if (!m || m->type != J_OBJ) protocol_error("a control frame that is not a JSON object");
    const char *type = json_str(m, "type");
    if (!type) protocol_error("a control message without a type");
    if (!got_hello) {
      if (strcmp(type, "hello_ok") == 0) {
        if (json_num(m, "protocol", -1) != PROTOCOL_VERSION) {
          close(sock);
          handover("a daemon of another protocol version");
        }
        if ((st->ra->needs_pools && !has_feature(m, "pools")) || (st->ra->needs_supersede && !has_feature(m, "supersede"))) {
          close(sock);
          handover("a daemon without the pools/supersede features (the Node CLI says which)");
        }
        if (gated && send_json(sock, run.p, run.n) != 0) {
          close(sock);
          handover("the daemon closed the socket before the request was written");
        }
        b_free(&run);
        got_hello = 1;
        /* Framed by our own choice: nothing to wait for (the daemon answers `stdio` only to an offer of descriptors). */
        if (st->ra->framed) {
          ready = 1;
          stdin_open = st->ra->interactive;
        }
      } else if (strcmp(type, "error") == 0) {
        const char *code = json_str(m, "code"), *msg = json_str(m, "message");
        if (code && strcmp(code, "protocol_mismatch") == 0) {
          close(sock);
          handover("the daemon refused our protocol version");
        }
        dprintf(2, "lockd: %s\n", msg ? msg : "the daemon refused the request");
        exit(exit_code_for(code ? code : ""));
      } else protocol_error("a message before hello_ok");
      json_free(m);
      continue;
    }
    if (strcmp(type, "stdio") == 0 && !ready) {
      const char *mode = json_str(m, "mode");
      if (mode && strcmp(mode, "fds") == 0 && !st->ra->framed) {
        int fds[3] = {1, 2, 0};
        if (send_fds(sock, fds, st->ra->interactive ? 3 : 2) != 0) {
          dprintf(2, "lockd: cannot pass descriptors to the lockd daemon: %s\n", strerror(errno));
          exit(EXIT_LOCKD_FAILED);
        }
      }
      else if (st->ra->interactive) stdin_open = 1;
      goto settle;
    }
    if (!ready) {
    settle:
      /* A daemon that predates descriptor passing never answers the offer: its first reply means framed. */
      if (strcmp(type, "stdio") != 0 && st->ra->interactive) stdin_open = 1;
      ready = 1;
      for (int i = 0; i < st->npending; i++) send_signal(sock, st->pending[i]);
      st->npending = 0;
      if (strcmp(type, "stdio") == 0) {
        json_free(m);
        continue;
      }
    }
    if (strcmp(type, "queued") == 0) {
      set_result_path(st, json_str(m, "result_path"));
      show_manifest(st, json_str(m, "manifest_path"));
      st->waiting_since = now_ms();
      st->waiting_since_wall = wall_ms();
      waiting_line(st, m, st->tty);
    } else if (strcmp(type, "waiting") == 0) {
      if (st->live_line) waiting_line(st, m, 1);
    } else if (strcmp(type, "progress") == 0) {
      progress_line(st, m);
    } else if (strcmp(type, "launching") == 0) {
      st->started = 1;
      set_result_path(st, json_str(m, "result_path"));
    } else if (strcmp(type, "started") == 0) {
      st->started = 1;
      const jv *tty = json_get(m, "tty");
      st->tty_job = tty && tty->type == J_TRUE;
      if (st->tty_job && st->winch_pending && ready) send_resize(sock);
      st->winch_pending = 0;
      set_result_path(st, json_str(m, "result_path"));
      show_manifest(st, json_str(m, "manifest_path"));
      clear_live_line(st);
      if (st->waiting_since >= 0) {
        buf s = {0};
        b_printf(&s, "%.1f", (now_ms() - st->waiting_since) / 1000);
        const char *kv[] = {"seconds", s.p, 0};
        say(0, TEXT_GRANTED, kv);
        b_free(&s);
      }
    } else if (strcmp(type, "detached") == 0) {
      const char *run_id = json_str(m, "run_id"), *mp = json_str(m, "manifest_path"), *rp = json_str(m, "result_path");
      if (!run_id || !mp || !rp) protocol_error("a detached message without run_id, manifest_path or result_path");
      const char *kv1[] = {"path", mp, 0}, *kv2[] = {"path", rp, 0};
      say(0, TEXT_MANIFEST, kv1);
      say(0, TEXT_RESULT, kv2);
      buf o = {0};
      b_printf(&o, "%s\n", run_id);
      write_all(1, o.p, o.n);
      exit(0);
    } else if (strcmp(type, "not_obtained") == 0) {
      clear_live_line(st);
      const char *code = json_str(m, "code"), *msg = json_str(m, "message");
      const char *kv[] = {"code", code ? code : "", "message", msg ? msg : "", 0};
      say(1, TEXT_NOT_OBTAINED, kv);
    } else if (strcmp(type, "finished") == 0) {
      const jv *o = json_get(m, "outcome");
      const jv *code = json_get(o, "exit_code");
      const char *reason = json_str(o, "reason"), *message = json_str(o, "message"), *rp = json_str(o, "result_path");
      if (!code || code->type != J_NUM || !reason || !rp) protocol_error("a finished message without exit_code, reason or result_path");
      /* Checked before the cast: a double outside int's range is undefined behaviour in C. */
      if (!(code->num >= 0 && code->num <= 255) || code->num != (double)(int)code->num) protocol_error("a finished message whose exit_code is not 0..255");
      clear_live_line(st);
      show_manifest(st, json_str(o, "manifest_path"));
      if (in_list(SAY_REASONS, reason) && message && *message) dprintf(2, "lockd: %s\n", message);
      else if (strcmp(reason, "timeout") == 0) say(1, TEXT_TIMED_OUT, (const char *const[]){0});
      const char *kv[] = {"path", rp, 0};
      say(0, TEXT_RESULT, kv);
      const jv *result = json_get(o, "result");
      if (st->ra->result_fd >= 0 && result) {
        buf line = {0};
        b_put(&line, result->raw, result->rawlen);
        b_str(&line, "\n");
        if (write_fully(st->ra->result_fd, line.p, line.n) != 0) dprintf(2, "lockd: cannot write the result to fd %d: %s\n", st->ra->result_fd, strerror(errno));
      }
      exit((int)code->num);
    } else if (strcmp(type, "error") == 0) {
      clear_live_line(st);
      const char *code = json_str(m, "code"), *msg = json_str(m, "message");
      dprintf(2, "lockd: %s\n", msg ? msg : code ? code : "error");
      exit(exit_code_for(code ? code : ""));
    }
    json_free(m);
  }
}

int main(int argc, char **argv) {
  orig_argv = argv;
  if (argc < 2 || strcmp(argv[1], "run") != 0) handover("not `lockd run`");
  run_args ra;
  build_request(argc - 2, argv + 2, &ra);
  if (ra.handover) handover(ra.handover);
  quiet = ra.quiet;

  if (pipe(sig_pipe) != 0) handover("no pipe for signals");
  for (int i = 0; i < 2; i++) {
    fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
    fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
  if (isatty(1)) sigaction(SIGWINCH, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  run_state st;
  memset(&st, 0, sizeof st);
  st.ra = &ra;
  st.tty = isatty(2) && !ra.detach;
  st.waiting_since = -1;
  st.last_sigint = -1e12;
  for (int attempt = 1;; attempt++) {
    converse(&st, attempt);
    /* Lost. Before `launching` nothing ran: send the request once more (the Node client does the same). */
    clear_live_line(&st);
    if (!st.started && !ra.detach && attempt == 1) {
      say(0, TEXT_RETRY, (const char *const[]){0});
      continue;
    }
    const char *kv[] = {"path", st.result_path ? st.result_path : "(unknown)", 0};
    say(1, TEXT_LOST, kv);
    return EXIT_LOCKD_FAILED;
  }
}
