/* A pty for a job whose caller is on a terminal (pty.c, Linux only): adds ptyOpen and ptyPump to the addon. */
#ifndef LOCKD_PTY_H
#define LOCKD_PTY_H
#include <node_api.h>
napi_status lockd_pty_init(napi_env env, napi_value exports);
#endif
