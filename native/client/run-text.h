/* Generated from src/client/run-text.ts by native/client/gen-table.mjs: do not edit. */
#ifndef LOCKD_FAST_RUN_TEXT_H
#define LOCKD_FAST_RUN_TEXT_H

#define PROTOCOL_VERSION 1
#define LOCKD_VERSION "0.1.0"

#define TEXT_MANIFEST "manifest -> {path}"
#define TEXT_RESULT "result -> {path}"
#define TEXT_WAITING "waiting for {names} (position {position}){blockers}"
#define TEXT_GRANTED "locks granted after {seconds} s"
#define TEXT_TIMED_OUT "timed out; the process tree was killed"
#define TEXT_RETRY "the lockd daemon went away while we were queued; retrying once"
#define TEXT_LOST "lost the connection to the lockd daemon; the run's result will be at {path}"
#define TEXT_LOST_HANDSHAKE "the lockd daemon closed the connection during the handshake"
#define TEXT_NOT_OBTAINED "{code}: {message}"
#define TEXT_PROGRESS "still waiting for {names}: {elapsed} elapsed, position {position}, {blocker}, ETA {eta}, {deadline}"
#define TEXT_PROGRESS_NO_BLOCKER "no blocker known"
#define TEXT_PROGRESS_DEADLINE "gives up in {left} (at {clock}Z)"
#define TEXT_PROGRESS_NO_DEADLINE "no deadline (--wait inf)"
#define TEXT_BLOCKER " behind {kind} {id}{pid} {holder}{command}"
#define TEXT_BLOCKER_PID " (pid {pid})"
#define TEXT_BLOCKER_COMMAND ": {command}"
#define BLOCKER_COMMAND_MAX 60
#define ETA_UNKNOWN "unknown"
#define ETA_SOON "any moment"
#define ETA_ESTIMATE "~{duration}"

#define EXIT_USAGE 2
#define EXIT_NOT_OBTAINED 75
#define EXIT_LOCKD_FAILED 125

static const char *const SAY_REASONS[] = {
    "command_not_found",
    "command_not_executable",
    "spawn_failed",
    "log_write_failed",
    "deadlock",
    "client_lost",
    "shutdown",
    "cancelled",
    "lock_lost",
    "pool_gone",
    "superseded",
    0,
};
static const char *const USAGE_ERROR_CODES[] = {
    "usage",
    "bad_request",
    "invalid_run_id",
    "run_id_exists",
    "unsafe_lock_path",
    "no_such_run",
    "no_such_hold",
    "already_held",
    "gc_needs_all",
    "unknown_pool",
    "unknown_member",
    "pool_exists",
    0,
};
static const char *const NOT_OBTAINED_ERROR_CODES[] = {
    "lock_busy",
    "lock_wait_timeout",
    "deadlock",
    0,
};
static const char *const CONFIG_KEYS[] = {
    "socket",
    "state_dir",
    "build_root",
    "global_dir",
    "runs_root",
    "wait",
    "timeout",
    "kill_after",
    "keep",
    "progress_interval",
    "holder",
    "conflict_exit_code",
    "log_max_bytes",
    "ttl",
    "no_autostart",
    "log_level",
    "cluster",
    "cluster_prefix",
    "cluster_ttl",
    "cluster_ca",
    "cluster_cert",
    "cluster_key",
    "cluster_user",
    "cluster_password",
    "cluster_host",
    "on_lock_lost",
    "pools",
    "max_user_priority",
    0,
};

#endif
