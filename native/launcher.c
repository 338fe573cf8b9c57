/*
 * lockd's native job launcher (Linux). Exported through lockd_native (see peercred.c's Init):
 *
 *   pipe()                     -> [readFd, writeFd], both O_CLOEXEC: the job's output and input pipes.
 *   spawn(opts, onExit)        -> { pid, handle, inCgroup, via } once the child has exec'd; throws a Node-style
 *                                 system error (err.code ENOENT/EACCES/ENOEXEC/..., err.stage) when it could not.
 *                                 onExit(code, signal) is called once, from the event loop, when the child is reaped.
 *   signal(handle, signo)      -> true when sent, false when the child is already reaped (never another process).
 *
 * Why native: libuv starts a child with fork(), which copies the page tables of the whole ~100 MB daemon
 * (3 to 14 ms, measured in docs/performance.md), and Node has no pidfd. Here the child shares the daemon's memory
 * until it execs (CLONE_VM|CLONE_VFORK, as glibc's posix_spawn does), is created inside its job cgroup
 * (CLONE_INTO_CGROUP: no process of the job ever runs outside it), and is watched and signalled through a pidfd
 * (poll on the event loop, waitid(P_PIDFD), pidfd_send_signal), so a reused pid can never be mistaken for it.
 *
 * The child runs on its own small stack, in the daemon's address space, while the daemon's thread is suspended:
 * it may only use raw system calls on memory prepared by the parent (no malloc, no locks, no libc state), which
 * is why everything (argv, envp, the candidate paths) is built before the clone.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

#define CHILD_STACK_SIZE (256 * 1024)
#define MAX_IDS 1024

#define NAPI_OK(call)                   \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

/* ------------------------------------------------------------------------------------------------------------ */
/* What the child needs, all prepared by the parent. */

typedef struct {
  char **candidates; /* paths to execve in order (PATH already searched by the caller) */
  char **argv;
  char **envp;
  char *cwd;
  int stdio[3];      /* descriptors that become the child's 0, 1, 2 */
  int procs_fd;      /* fallback: cgroup.procs of the job cgroup, written by the child itself; -1 = none */
  int report_fd;     /* becomes the child's fd 3 (lockd-reaper's exec report, native/reaper.c); -1 = none */
  bool set_ids;
  uid_t uid;
  gid_t gid;
  int ngroups;
  gid_t groups[MAX_IDS];
  /* Written by the child when it fails (the parent reads them after the vfork-style clone returns). */
  volatile int err;
  volatile int stage;
  volatile int cgroup_failed;
} child_ctx;

enum { STAGE_NONE, STAGE_SETSID, STAGE_SETID, STAGE_DUP, STAGE_CHDIR, STAGE_EXEC };
static const char *stage_names[] = {"none", "setsid", "setid", "dup", "chdir", "exec"};

/* The kernel's struct sigaction for rt_sigaction (glibc's differs in layout). */
struct ksigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  uint64_t mask;
};

static long rsys(long n, long a, long b, long c, long d) { return syscall(n, a, b, c, d); }

/* Runs in the child, before exec. Raw system calls only; returns only on failure (the exit code is then 127). */
static int child_main(void *arg) {
  child_ctx *c = arg;
  /* Every signal back to its default action; the mask (all blocked by the parent) is emptied just before exec,
     so no handler of the daemon's can ever run in this child, which shares the daemon's memory. */
  struct ksigaction dfl = {SIG_DFL, 0, NULL, 0};
  for (int s = 1; s < 65; s++) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    rsys(SYS_rt_sigaction, s, (long)&dfl, 0, 8);
  }
  if (rsys(SYS_setsid, 0, 0, 0, 0) < 0) {
    c->err = errno;
    c->stage = STAGE_SETSID;
    return 127;
  }
  if (c->procs_fd >= 0 && rsys(SYS_write, c->procs_fd, (long)"0", 1, 0) < 0) c->cgroup_failed = errno;
  if (c->set_ids) {
    /* Raw calls: glibc's setuid() would try to signal the daemon's other threads. */
    if (rsys(SYS_setgroups, c->ngroups, (long)c->groups, 0, 0) < 0 || rsys(SYS_setresgid, c->gid, c->gid, c->gid, 0) < 0 ||
        rsys(SYS_setresuid, c->uid, c->uid, c->uid, 0) < 0) {
      c->err = errno;
      c->stage = STAGE_SETID;
      return 127;
    }
  }
  /* Descriptors: first lift any source that sits on 0..2 out of the way, then place each. */
  int src[3];
  for (int i = 0; i < 3; i++) {
    src[i] = c->stdio[i];
    if (src[i] >= 0 && src[i] < 3) {
      long moved = rsys(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 3, 0);
      if (moved < 0) {
        c->err = errno;
        c->stage = STAGE_DUP;
        return 127;
      }
      src[i] = (int)moved;
    }
  }
  for (int i = 0; i < 3; i++) {
    if (rsys(SYS_dup3, src[i], i, 0, 0) < 0) {
      c->err = errno;
      c->stage = STAGE_DUP;
      return 127;
    }
  }
  /* lockd-reaper's report pipe at fd 3, the one descriptor past stdio a job may get (0..2 are placed already). */
  int keep_from = 3;
  if (c->report_fd >= 0) {
    long placed = c->report_fd == 3 ? rsys(SYS_fcntl, 3, F_SETFD, 0, 0) : rsys(SYS_dup3, c->report_fd, 3, 0, 0);
    if (placed < 0) {
      c->err = errno;
      c->stage = STAGE_DUP;
      return 127;
    }
    keep_from = 4;
  }
  if (rsys(SYS_chdir, (long)c->cwd, 0, 0, 0) < 0) {
    c->err = errno;
    c->stage = STAGE_CHDIR;
    return 127;
  }
  /* Nothing of the daemon's leaks into a job, whatever flags its descriptors carry (ENOSYS before 5.9: they
     are all O_CLOEXEC anyway). */
  rsys(SYS_close_range, keep_from, ~0U, 0, 0);
  uint64_t empty = 0;
  rsys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&empty, 0, 8);
  int err = ENOENT;
  bool saw_eacces = false;
  for (char **p = c->candidates; *p != NULL; p++) {
    rsys(SYS_execve, (long)*p, (long)c->argv, (long)c->envp, 0);
    err = errno;
    if (err == EACCES) saw_eacces = true;
    /* As execvp: a missing or unusable directory entry means "try the next one". */
    if (err != ENOENT && err != ENOTDIR && err != EACCES && err != ELOOP && err != ENAMETOOLONG) break;
  }
  if (err != ENOEXEC && saw_eacces) err = EACCES;
  /* The mask is empty now; block again so nothing interrupts the report (the parent is still suspended). */
  uint64_t full = ~(uint64_t)0;
  rsys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&full, 0, 8);
  c->err = err;
  c->stage = STAGE_EXEC;
  return 127;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Starting the child. */

static void *child_stack;

#if defined(__x86_64__)
/* clone3 with CLONE_VM: the child returns from the syscall on the new stack, with no valid frame, so it must
   not return into C. The trampoline calls fn(arg) on that stack and exits with its result. */
static long clone3_call(struct clone_args *args, size_t size, int (*fn)(void *), void *arg) {
  long ret;
  register int (*r12)(void *) __asm__("r12") = fn;
  register void *r13 __asm__("r13") = arg;
  __asm__ volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xor %%ebp, %%ebp\n\t"
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "mov %%eax, %%edi\n\t"
      "mov $60, %%eax\n\t" /* SYS_exit */
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "0"((long)SYS_clone3), "D"(args), "S"(size), "r"(r12), "r"(r13)
      : "rcx", "r11", "memory");
  return ret;
}
#define HAVE_CLONE3_CALL 1
#endif

/* -1 unknown, 0 no, 1 yes: whether clone3 with CLONE_INTO_CGROUP works here (learned on first use). */
static int clone3_usable = -1;

typedef struct {
  pid_t pid;
  int pidfd;
  bool in_cgroup;
  const char *via;
  int err; /* errno of a failed clone, 0 otherwise */
} clone_result;

static clone_result do_clone(child_ctx *c, int cgroup_fd) {
  clone_result r = {-1, -1, false, "", 0};
  if (child_stack == NULL) {
    void *s = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s == MAP_FAILED) {
      r.err = errno;
      return r;
    }
    child_stack = s;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  long pid = -1;
  c->procs_fd = -1;
#ifdef HAVE_CLONE3_CALL
  if (clone3_usable != 0) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    args.stack = (uint64_t)(uintptr_t)child_stack;
    args.stack_size = CHILD_STACK_SIZE;
    args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
    pid = clone3_call(&args, sizeof args, child_main, c);
    if (pid < 0) {
      int e = (int)-pid;
      /* Older kernels (no clone3, no CLONE_INTO_CGROUP), or a cgroup the kernel will not put us in: the
         portable-within-native path below, where the child joins its cgroup itself before exec. */
      if (e == ENOSYS || e == E2BIG || e == EINVAL || e == EBUSY || e == EOPNOTSUPP || e == EACCES || e == EPERM) {
        if (e == ENOSYS || e == E2BIG) clone3_usable = 0;
        pid = -1;
      } else {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        r.err = e;
        return r;
      }
    } else {
      clone3_usable = 1;
      r.via = "clone3";
      r.in_cgroup = cgroup_fd >= 0;
    }
  }
#endif
  if (pid < 0) {
    c->procs_fd = -1;
    if (cgroup_fd >= 0) c->procs_fd = openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    pid = clone(child_main, (char *)child_stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, c, &pidfd);
    if (pid < 0) {
      int e = errno;
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      if (c->procs_fd >= 0) close(c->procs_fd);
      r.err = e;
      return r;
    }
    r.via = "clone";
    r.in_cgroup = c->procs_fd >= 0 && c->cgroup_failed == 0;
    if (c->procs_fd >= 0) close(c->procs_fd);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  r.pid = (pid_t)pid;
  r.pidfd = pidfd;
  return r;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Watching the child: a pidfd polled on the event loop. */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_exit;
  napi_async_context actx;
  int pidfd; /* -1 once reaped and closed: signal() then refuses */
  pid_t pid;
  int owners; /* the poll handle and the JS handle: freed when both are done */
} job_watch;

static void watch_release(job_watch *w) {
  if (--w->owners > 0) return;
  free(w);
}

static void on_poll_closed(uv_handle_t *h) {
  job_watch *w = h->data;
  if (w->on_exit) napi_delete_reference(w->env, w->on_exit);
  w->on_exit = NULL;
  napi_async_destroy(w->env, w->actx);
  watch_release(w);
}

static void on_handle_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watch_release((job_watch *)data);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  job_watch *w = h->data;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  do r = waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0 && si.si_pid == 0) return; /* woken early: not exited yet */
  if (r < 0 && errno != ECHILD) return; /* cannot tell yet; the pidfd stays readable, so this runs again */
  (void)status;
  int code = -1, sig = -1;
  if (r == 0) {
    if (si.si_code == CLD_EXITED) code = si.si_status;
    else sig = si.si_status;
  }
  uv_poll_stop(h);
  close(w->pidfd);
  w->pidfd = -1;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value fn, recv, argv[2], result;
    if (napi_get_reference_value(env, w->on_exit, &fn) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
      if (code >= 0) napi_create_int32(env, code, &argv[0]);
      else napi_get_null(env, &argv[0]);
      if (sig >= 0) napi_create_int32(env, sig, &argv[1]);
      else napi_get_null(env, &argv[1]);
      if (napi_make_callback(env, w->actx, recv, fn, 2, argv, &result) == napi_pending_exception) {
        napi_value exc;
        if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
      }
    }
    napi_close_handle_scope(env, scope);
  }
  uv_close((uv_handle_t *)h, on_poll_closed);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* N-API plumbing. */

static const char *errno_code(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOEXEC: return "ENOEXEC";
    case ENOTDIR: return "ENOTDIR";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case E2BIG: return "E2BIG";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EBADF: return "EBADF";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ETXTBSY: return "ETXTBSY";
    case EISDIR: return "EISDIR";
    case ENOSYS: return "ENOSYS";
    case ESRCH: return "ESRCH";
    default: return "EUNKNOWN";
  }
}

static void throw_sys(napi_env env, const char *syscall_name, const char *stage, int err) {
  char message[200];
  snprintf(message, sizeof message, "%s failed (%s): %s", syscall_name, stage, strerror(err));
  napi_value msg, code, error, v;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return;
  if (napi_create_string_utf8(env, errno_code(err), NAPI_AUTO_LENGTH, &code) != napi_ok) return;
  if (napi_create_error(env, code, msg, &error) != napi_ok) return;
  if (napi_create_int32(env, -err, &v) == napi_ok) napi_set_named_property(env, error, "errno", v);
  if (napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, error, "syscall", v);
  if (napi_create_string_utf8(env, stage, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, error, "stage", v);
  napi_throw(env, error);
}

static napi_value prop(napi_env env, napi_value obj, const char *name) {
  napi_value v;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return NULL;
  return v;
}

static bool get_int(napi_env env, napi_value obj, const char *name, int32_t *out) {
  napi_value v = prop(env, obj, name);
  return v != NULL && napi_get_value_int32(env, v, out) == napi_ok;
}

/* A JS string array as a NULL-terminated C array; one allocation, freed by the caller with free(). */
static char **string_array(napi_env env, napi_value arr) {
  bool is_array = false;
  uint32_t n = 0;
  if (arr == NULL || napi_is_array(env, arr, &is_array) != napi_ok || !is_array) return NULL;
  if (napi_get_array_length(env, arr, &n) != napi_ok) return NULL;
  size_t total = sizeof(char *) * (n + 1);
  size_t lens[n > 0 ? n : 1];
  for (uint32_t i = 0; i < n; i++) {
    napi_value s;
    if (napi_get_element(env, arr, i, &s) != napi_ok || napi_get_value_string_utf8(env, s, NULL, 0, &lens[i]) != napi_ok) return NULL;
    total += lens[i] + 1;
  }
  char **out = malloc(total);
  if (out == NULL) return NULL;
  char *p = (char *)(out + n + 1);
  for (uint32_t i = 0; i < n; i++) {
    napi_value s;
    size_t written;
    napi_get_element(env, arr, i, &s);
    napi_get_value_string_utf8(env, s, p, lens[i] + 1, &written);
    out[i] = p;
    p += lens[i] + 1;
  }
  out[n] = NULL;
  return out;
}

static napi_value Pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    throw_sys(env, "pipe2", "pipe", errno);
    return NULL;
  }
  napi_value arr, r, w;
  NAPI_OK(napi_create_array_with_length(env, 2, &arr));
  NAPI_OK(napi_create_int32(env, fds[0], &r));
  NAPI_OK(napi_create_int32(env, fds[1], &w));
  NAPI_OK(napi_set_element(env, arr, 0, r));
  NAPI_OK(napi_set_element(env, arr, 1, w));
  return arr;
}

static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  napi_valuetype t0, t1;
  if (argc < 2 || napi_typeof(env, args[0], &t0) != napi_ok || t0 != napi_object || napi_typeof(env, args[1], &t1) != napi_ok || t1 != napi_function) {
    napi_throw_type_error(env, "EINVAL", "spawn(opts, onExit): an options object and a function");
    return NULL;
  }
  napi_value opts = args[0];
  child_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) {
    throw_sys(env, "calloc", "prepare", ENOMEM);
    return NULL;
  }
  napi_value result = NULL;
  int32_t cgroup_fd = -1;
  c->candidates = string_array(env, prop(env, opts, "candidates"));
  c->argv = string_array(env, prop(env, opts, "argv"));
  c->envp = string_array(env, prop(env, opts, "envp"));
  char **cwd = string_array(env, prop(env, opts, "cwd"));
  napi_value stdio = prop(env, opts, "stdio");
  int32_t report_fd = -1;
  bool ok = c->candidates && c->argv && c->envp && cwd && cwd[0] && stdio && get_int(env, opts, "cgroupFd", &cgroup_fd);
  /* Optional: absent means none. */
  napi_value report_v = ok ? prop(env, opts, "reportFd") : NULL;
  napi_valuetype report_type = napi_undefined;
  if (report_v) napi_typeof(env, report_v, &report_type);
  if (ok && report_type == napi_number) ok = napi_get_value_int32(env, report_v, &report_fd) == napi_ok && report_fd >= 0;
  c->report_fd = report_fd;
  if (ok) c->cwd = cwd[0];
  for (uint32_t i = 0; ok && i < 3; i++) {
    napi_value v;
    int32_t fd;
    ok = napi_get_element(env, stdio, i, &v) == napi_ok && napi_get_value_int32(env, v, &fd) == napi_ok && fd >= 0;
    c->stdio[i] = fd;
  }
  napi_value ids = ok ? prop(env, opts, "ids") : NULL;
  napi_valuetype ids_type = napi_undefined;
  if (ids) napi_typeof(env, ids, &ids_type);
  if (ok && ids_type == napi_object) {
    int32_t uid, gid;
    napi_value groups = prop(env, ids, "groups");
    uint32_t n = 0;
    ok = get_int(env, ids, "uid", &uid) && get_int(env, ids, "gid", &gid) && groups && napi_get_array_length(env, groups, &n) == napi_ok && n <= MAX_IDS;
    c->set_ids = ok;
    c->uid = (uid_t)uid;
    c->gid = (gid_t)gid;
    c->ngroups = (int)n;
    for (uint32_t i = 0; ok && i < n; i++) {
      napi_value g;
      int32_t gv;
      ok = napi_get_element(env, groups, i, &g) == napi_ok && napi_get_value_int32(env, g, &gv) == napi_ok;
      c->groups[i] = (gid_t)gv;
    }
  }
  if (!ok) {
    napi_throw_type_error(env, "EINVAL", "spawn: candidates, argv, envp, cwd (string arrays), stdio ([fd, fd, fd]) and cgroupFd are required");
    goto done;
  }
  clone_result cr = do_clone(c, cgroup_fd);
  if (cr.pid < 0) {
    throw_sys(env, cr.via[0] ? cr.via : "clone", "clone", cr.err);
    goto done;
  }
  if (c->stage != STAGE_NONE) {
    /* The child failed before or at exec and has exited (or is about to): reap it now, then report why. */
    siginfo_t si;
    while (waitid((idtype_t)P_PIDFD, (id_t)cr.pidfd, &si, WEXITED) < 0 && errno == EINTR) {
    }
    close(cr.pidfd);
    throw_sys(env, c->stage == STAGE_EXEC ? "execve" : stage_names[c->stage], stage_names[c->stage], c->err);
    goto done;
  }
  job_watch *w = calloc(1, sizeof *w);
  uv_loop_t *loop = NULL;
  napi_value resource_name, handle, pid_v, in_cg, via;
  if (w == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    /* Cannot watch it: kill it rather than leave a job nobody sees end. */
    syscall(SYS_pidfd_send_signal, cr.pidfd, SIGKILL, NULL, 0);
    siginfo_t si;
    waitid((idtype_t)P_PIDFD, (id_t)cr.pidfd, &si, WEXITED);
    close(cr.pidfd);
    free(w);
    throw_sys(env, "uv_poll_init", "watch", ENOMEM);
    goto done;
  }
  w->env = env;
  w->pidfd = cr.pidfd;
  w->pid = cr.pid;
  w->owners = 2;
  w->poll.data = w;
  napi_create_string_utf8(env, "lockd:job", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &w->actx);
  napi_create_reference(env, args[1], 1, &w->on_exit);
  uv_poll_init(loop, &w->poll, cr.pidfd);
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  napi_create_object(env, &result);
  napi_create_external(env, w, on_handle_finalized, NULL, &handle);
  napi_create_int32(env, cr.pid, &pid_v);
  napi_get_boolean(env, cr.in_cgroup, &in_cg);
  napi_create_string_utf8(env, cr.via, NAPI_AUTO_LENGTH, &via);
  napi_set_named_property(env, result, "pid", pid_v);
  napi_set_named_property(env, result, "handle", handle);
  napi_set_named_property(env, result, "inCgroup", in_cg);
  napi_set_named_property(env, result, "via", via);
done:
  free(c->candidates);
  free(c->argv);
  free(c->envp);
  free(cwd);
  free(c);
  return result;
}

static napi_value Signal(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  void *data = NULL;
  int32_t sig = 0;
  if (argc < 2 || napi_get_value_external(env, args[0], &data) != napi_ok || napi_get_value_int32(env, args[1], &sig) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "signal(handle, signo)");
    return NULL;
  }
  job_watch *w = data;
  bool sent = false;
  if (w->pidfd >= 0) {
    if (syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0) == 0) sent = true;
    else if (errno != ESRCH) {
      throw_sys(env, "pidfd_send_signal", "signal", errno);
      return NULL;
    }
  }
  napi_value r;
  NAPI_OK(napi_get_boolean(env, sent, &r));
  return r;
}

napi_status lockd_launcher_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"pipe", NULL, Pipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spawn", NULL, Spawn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"signal", NULL, Signal, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
