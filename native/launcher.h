/* The native job launcher (launcher.c, Linux only): adds pipe, spawn and signal to the addon's exports. */
#ifndef LOCKD_LAUNCHER_H
#define LOCKD_LAUNCHER_H
#include <node_api.h>
napi_status lockd_launcher_init(napi_env env, napi_value exports);
#endif
