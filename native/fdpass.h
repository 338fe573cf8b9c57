/* Descriptor passing (fdpass.c, every Unix) and the kernel-side output relay (relay.c, Linux only). */
#ifndef LOCKD_FDPASS_H
#define LOCKD_FDPASS_H
#include <node_api.h>
napi_status lockd_fdpass_init(napi_env env, napi_value exports);
napi_status lockd_relay_init(napi_env env, napi_value exports);
#endif
