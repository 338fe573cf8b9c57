{
  # lockd_native: SO_PEERCRED / getpeereid+LOCAL_PEERPID and flock(2) for the daemon (native/peercred.c).
  # Optional: when it is not built, src/util/peercred.ts returns null and callers fall back
  # (the flock holder then uses its perl helper).
  "targets": [
    {
      "target_name": "lockd_native",
      "sources": ["native/peercred.c"],
      # Pin the N-API level so one binary loads on Node 20, 22 and 24.
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-std=c99"],
      "xcode_settings": {
        "MACOSX_DEPLOYMENT_TARGET": "10.15",
        "OTHER_CFLAGS": ["-Wall", "-Wextra"]
      }
    }
  ]
}
