/*
 * lockd-reaper: a job's own subreaper, for hosts where the daemon has no writable cgroup v2 (containers, hosts
 * where lockd's cgroup is not delegated). The native launcher starts it as the job's leader (pidfd, session and
 * process group as for any job), and it starts the job. PR_SET_CHILD_SUBREAPER makes every process of the job that
 * loses its parent (a double fork, `setsid cmd &` followed by the parent's exit) its child instead of init's, so
 * nothing of the job can leave the tree the daemon sees. When the job itself exits, whatever is left of it gets
 * SIGTERM, GRACE_MS to go, then SIGKILL, until the reaper has no child at all; then it exits as the job did (its
 * code, or the same signal), and only then does the daemon see the leader's exit and pass the lock on.
 *
 *   lockd-reaper GRACE_MS N CANDIDATE_1 … CANDIDATE_N -- ARGV0 ARG…
 *
 * The candidates are the paths execvp would try, in order (the daemon computes them from the job's PATH). If none
 * can be executed, the reaper writes "E<errno>\n" to fd 3 (a pipe the daemon reads when the leader exits) and exits
 * 127: the run is recorded as "command not found" / "not executable" exactly as when the launcher execs directly.
 * Signals sent to the job's process group reach the job directly; the reaper ignores them (it must outlive the
 * job to reap it), and SIGKILL, which it cannot ignore, leaves the daemon's own tree kill to finish the work.
 * Small on purpose: no allocation after start, no stdio, nothing but system calls.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPORT_FD 3

static long parse_nonneg(const char *s) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0) return -1;
  return v;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Signal every direct child (orphans of the job land here); returns how many there were. */
static int signal_children(int sig) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[4096];
  int count = 0;
  long pid = 0;
  bool in_number = false;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        pid = pid * 10 + (buf[i] - '0');
        in_number = true;
      } else if (in_number) {
        kill((pid_t)pid, sig);
        count++;
        pid = 0;
        in_number = false;
      }
    }
  }
  if (in_number) {
    kill((pid_t)pid, sig);
    count++;
  }
  close(fd);
  return count;
}

/* Reap every child that has ended; true once there is no child left. */
static bool reap_all(void) {
  for (;;) {
    pid_t p = waitpid(-1, NULL, WNOHANG);
    if (p > 0) continue;
    if (p < 0 && errno == EINTR) continue;
    return p < 0 && errno == ECHILD;
  }
}

/* What is left of the job: SIGTERM to the group and every child, GRACE_MS, then SIGKILL until nothing is left. */
static void end_the_rest(long grace_ms) {
  if (reap_all()) return;
  /* The group is the job's only when the reaper leads it (the launcher starts it in a session of its own); never
     signal a caller's group. */
  if (getpgrp() == getpid()) kill(0, SIGTERM);
  signal_children(SIGTERM);
  long deadline = now_ms() + grace_ms;
  long pause = 1;
  while (now_ms() < deadline) {
    if (reap_all()) return;
    sleep_ms(pause);
    if (pause < 50) pause *= 2;
  }
  for (;;) {
    /* Direct children only: kill(0, SIGKILL) would end the reaper too. A grandchild becomes a child (an orphan)
       once its parent is gone, and is killed on the next round. */
    signal_children(SIGKILL);
    if (reap_all()) return;
    sleep_ms(5);
  }
}

static void report_exec_failure(int err) {
  char msg[32];
  int n = snprintf(msg, sizeof msg, "E%d\n", err);
  if (n > 0) {
    ssize_t w;
    do {
      w = write(REPORT_FD, msg, (size_t)n);
    } while (w < 0 && errno == EINTR);
  }
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "lockd-reaper: started by lockd's launcher only\n");
    return 125;
  }
  long grace_ms = parse_nonneg(argv[1]);
  long n = parse_nonneg(argv[2]);
  if (grace_ms < 0 || n < 1 || 3 + n >= argc || strcmp(argv[3 + n], "--") != 0 || 4 + n >= argc) {
    fprintf(stderr, "lockd-reaper: bad arguments\n");
    return 125;
  }
  char **candidates = argv + 3;
  char **job_argv = argv + 4 + n;
  /* The job must not inherit the report pipe. */
  fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    /* Without it the reaper still waits for the job; orphans are then found as without it (docs/crash-safety.md). */
  }
  /* A reaper killed by a job's core-dumping signal must not leave a core file of its own. */
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);

  sigset_t all, none, saved;
  sigfillset(&all);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &all, &saved);

  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) < 0) {
    report_exec_failure(errno);
    return 127;
  }
  pid_t job = fork();
  if (job < 0) {
    report_exec_failure(errno);
    return 127;
  }
  if (job == 0) {
    close(status_pipe[0]);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int err = ENOENT;
    bool saw_eacces = false;
    for (long i = 0; i < n; i++) {
      execve(candidates[i], job_argv, environ);
      err = errno;
      if (err == EACCES) saw_eacces = true;
      /* As execvp: a missing or unusable directory entry means "try the next one". */
      if (err != ENOENT && err != ENOTDIR && err != EACCES && err != ELOOP && err != ENAMETOOLONG) break;
    }
    if (err != ENOEXEC && saw_eacces) err = EACCES;
    ssize_t w;
    do {
      w = write(status_pipe[1], &err, sizeof err);
    } while (w < 0 && errno == EINTR);
    _exit(127);
  }
  close(status_pipe[1]);
  int exec_err = 0;
  ssize_t got;
  do {
    got = read(status_pipe[0], &exec_err, sizeof exec_err);
  } while (got < 0 && errno == EINTR);
  close(status_pipe[0]);
  if (got == (ssize_t)sizeof exec_err) {
    waitpid(job, NULL, 0);
    report_exec_failure(exec_err);
    return 127;
  }
  close(REPORT_FD);
  /* The reaper ignores what is sent to the group (the job gets it directly) and outlives the job to reap it. */
  for (int s = 1; s < 65; s++) {
    if (s == SIGKILL || s == SIGSTOP || s == SIGCHLD) continue;
    signal(s, SIG_IGN);
  }
  sigprocmask(SIG_SETMASK, &none, NULL);

  int job_status = 0;
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, 0);
    if (p == job) {
      job_status = st;
      break;
    }
    if (p < 0 && errno != EINTR) break;
  }
  end_the_rest(grace_ms);

  if (WIFSIGNALED(job_status)) {
    int sig = WTERMSIG(job_status);
    signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    kill(getpid(), sig);
    /* A signal whose default is to ignore (never a job's death) falls through. */
    return 128 + sig;
  }
  return WIFEXITED(job_status) ? WEXITSTATUS(job_status) : 1;
}
