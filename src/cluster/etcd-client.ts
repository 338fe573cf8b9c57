/**
 * The etcd3 client, configured for lockd: every unary call has a deadline (a hung etcd must turn into an error we
 * can act on, not a request that waits forever), no hidden retries or circuit breakers (lockd decides when to try
 * again, and a breaker left open would keep failing for seconds after etcd is back), and a short, constant watch
 * reconnect delay. This is the only module besides session/watch code that imports etcd3; the daemon loads it
 * lazily, and only when a cluster is configured.
 */
import { readFileSync } from 'node:fs';
import { Etcd3, EtcdLeaseInvalidError, type IOptions } from 'etcd3';
import type { ClusterConfig } from './config.js';

/** Runs the call as is: the connection pool's policies would retry or trip a breaker behind our back. */
const passThrough = {
  execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    return Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal }));
  },
};

/** Reconnect a dropped watch stream after 200 ms, every time. */
const constantBackoff = {
  duration: 200,
  next() {
    return constantBackoff;
  },
};

export function createEtcdClient(cfg: ClusterConfig, rpcTimeoutMs: number): Etcd3 {
  const scheme = cfg.tls ? 'https' : 'http';
  const options: IOptions = {
    hosts: cfg.endpoints.map((e) => `${scheme}://${e}`),
    dialTimeout: rpcTimeoutMs,
    // Streams (watch, keepalive) live long; unary calls get a deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + rpcTimeoutMs }),
    faultHandling: {
      host: () => passThrough as never,
      global: passThrough as never,
      watchBackoff: constantBackoff as never,
    },
    grpcOptions: {
      // Notice a dead connection (a paused or partitioned server) instead of waiting on TCP.
      'grpc.keepalive_time_ms': Math.max(1000, rpcTimeoutMs),
      'grpc.keepalive_timeout_ms': Math.max(1000, rpcTimeoutMs),
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  };
  if (cfg.tls) {
    options.credentials = {
      rootCertificate: cfg.caFile ? readFileSync(cfg.caFile) : (undefined as unknown as Buffer),
      ...(cfg.keyFile ? { privateKey: readFileSync(cfg.keyFile) } : {}),
      ...(cfg.certFile ? { certChain: readFileSync(cfg.certFile) } : {}),
    };
  }
  if (cfg.user && cfg.password) {
    options.auth = { username: cfg.user, password: cfg.password, callOptions: () => ({ deadline: Date.now() + rpcTimeoutMs }) };
  }
  return new Etcd3(options);
}

/** Is this etcd error "your lease is gone" (as opposed to "etcd did not answer")? */
export function isLeaseGone(e: unknown): boolean {
  if (e instanceof EtcdLeaseInvalidError) return true;
  const msg = (e as Error)?.message ?? '';
  return /requested lease not found|lease not found/i.test(msg);
}

export function errorText(e: unknown): string {
  const msg = (e as Error)?.message ?? String(e);
  return msg.length > 300 ? `${msg.slice(0, 297)}...` : msg;
}
