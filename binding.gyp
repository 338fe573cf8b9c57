{
  # lockd_native: SO_PEERCRED / getpeereid+LOCAL_PEERPID and flock(2) for the daemon (native/peercred.c), and on
  # Linux the job launcher (native/launcher.c: clone3 into the job cgroup, pidfd exit and signals); descriptor passing
  # (native/fdpass.c: SCM_RIGHTS) and on Linux the tee/splice output relay (native/relay.c).
  # Optional: when it is not built (and no prebuilt binary loads), src/util/peercred.ts returns null and callers
  # fall back (the portable launcher, the perl flock helper).
  "targets": [
    {
      "target_name": "lockd_native",
      "sources": ["native/peercred.c", "native/fdpass.c"],
      # Pin the N-API level so one binary loads on Node 20, 22 and 24.
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-std=gnu99"],
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/launcher.c", "native/relay.c", "native/pty.c"],
          "defines": ["LOCKD_HAVE_LAUNCHER"]
        }]
      ],
      "xcode_settings": {
        "MACOSX_DEPLOYMENT_TARGET": "10.15",
        "OTHER_CFLAGS": ["-Wall", "-Wextra"]
      }
    },
    {
      # lockd-reaper (native/reaper.c): a job's own subreaper where the daemon has no writable cgroup v2; the native
      # launcher starts jobs under it (src/daemon/jobs/reaper.ts). Linux only; a plain executable, no Node inside.
      "target_name": "lockd-reaper",
      "type": "none",
      "conditions": [
        ["OS=='linux'", {
          "type": "executable",
          "sources": ["native/reaper.c"],
          "cflags": ["-Wall", "-Wextra", "-std=gnu99", "-O2"],
          "ldflags": ["-s"]
        }]
      ]
    }
  ]
}
