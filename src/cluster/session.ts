/**
 * The daemon's one etcd lease and the proof that it is still alive.
 *
 * Every cluster key this daemon writes is attached to this lease. It is renewed over a keep-alive stream every
 * quarter TTL; each acknowledged renewal proves the lease alive until (send time + granted TTL), since the server
 * counts the TTL from when it received the renewal, which is no earlier than when we sent it. When that proof is
 * about to run out (less than the safety margin left), the lease is declared lost *before* the server can expire it:
 * listeners stop the jobs that depend on it. A lost lease is never used again (its keys may be gone or about to
 * go); the next acquire grants a fresh one.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../daemon/server/logger.js';
import { LockdError } from '../util/errors.js';
import type { ClusterTiming } from './config.js';
import { errorText, isLeaseGone } from './etcd-client.js';
import { leaseHex } from '../daemon/locks/cluster-keys.js';

export class Lease {
  /** Epoch ms until which the lease is proven alive on the server. */
  validUntil: number;
  lost = false;
  lostReason: string | null = null;
  constructor(
    readonly id: string,
    readonly hex: string,
    readonly grantedTtlMs: number,
    grantSentAt: number,
  ) {
    this.validUntil = grantSentAt + grantedTtlMs;
  }
}

interface KeepAliveStream {
  write(req: { ID: string }): unknown;
  on(event: 'data', fn: (res: { ID: string; TTL: string }) => void): unknown;
  on(event: 'error' | 'end' | 'close', fn: (e?: unknown) => void): unknown;
  end(): unknown;
}

export interface SessionEvents {
  /** The lease can no longer be trusted: stop what depends on it (it may still be alive for up to `margin` ms). */
  lost: [lease: Lease, reason: string];
  /** A renewal was acknowledged: the lease is proven alive until lease.validUntil. */
  renewed: [lease: Lease];
}

export class LeaseSession extends EventEmitter<SessionEvents> {
  private current: Lease | null = null;
  private granting: Promise<Lease> | null = null;
  private stream: KeepAliveStream | null = null;
  private pendingSends: number[] = [];
  private tick: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Last error talking to etcd, for status. */
  lastError: string | null = null;

  constructor(
    private readonly client: Etcd3,
    private readonly ttlSeconds: number,
    readonly timing: ClusterTiming,
    private readonly log: Logger,
  ) {
    super();
  }

  /** The live lease, or null when there is none right now. */
  get lease(): Lease | null {
    return this.current && !this.current.lost ? this.current : null;
  }

  /** Milliseconds of proven life left on the lease (≤ 0 when none). */
  remainingMs(now = Date.now()): number {
    return this.current && !this.current.lost ? this.current.validUntil - now : 0;
  }

  /** Is the lease usable for a new grant: alive, with more than the safety margin left? */
  usable(lease: Lease, now = Date.now()): boolean {
    return this.current === lease && !lease.lost && lease.validUntil - now > this.timing.safetyMarginMs;
  }

  /** A live lease, granting one when needed. Throws LockdError('cluster_unavailable') when etcd does not answer. */
  async ensure(): Promise<Lease> {
    if (this.closed) throw new LockdError('cluster_unavailable', 'the cluster connection is closed (daemon shutting down)');
    const l = this.lease;
    if (l && this.usable(l)) return l;
    if (!this.granting) {
      this.granting = this.grant().finally(() => {
        this.granting = null;
      });
    }
    return this.granting;
  }

  private async grant(): Promise<Lease> {
    const sentAt = Date.now();
    let res;
    try {
      res = await this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds });
    } catch (e) {
      this.lastError = errorText(e);
      throw new LockdError('cluster_unavailable', `cannot reach etcd to get a lease: ${this.lastError}`);
    }
    if (this.closed) {
      void this.client.leaseClient.leaseRevoke({ ID: res.ID }).catch(() => undefined);
      throw new LockdError('cluster_unavailable', 'the cluster connection is closed (daemon shutting down)');
    }
    const ttlMs = Number(res.TTL) * 1000;
    const lease = new Lease(res.ID, leaseHex(res.ID), ttlMs, sentAt);
    // A lease replaced because too little of it was left is given up now, not when its deadline fires.
    if (this.current && !this.current.lost) this.markLost(this.current, 'replaced by a new lease');
    this.lastError = null;
    this.current = lease;
    this.log.info('cluster lease granted', { lease: lease.hex, ttl_s: Number(res.TTL) });
    this.startKeepAlive();
    this.armDeadline();
    this.emit('renewed', lease);
    return lease;
  }

  private startKeepAlive(): void {
    this.stopKeepAlive();
    this.tick = setInterval(() => this.sendKeepAlive(), this.timing.keepaliveIntervalMs);
    this.sendKeepAlive();
  }

  private stopKeepAlive(): void {
    if (this.tick) clearInterval(this.tick);
    this.tick = null;
    this.dropStream();
  }

  private dropStream(): void {
    const s = this.stream;
    this.stream = null;
    this.pendingSends = [];
    if (s) {
      try {
        s.end();
      } catch {
        /* already broken */
      }
    }
  }

  private opening = false;

  private sendKeepAlive(): void {
    const lease = this.lease;
    if (!lease) return;
    if (Date.now() >= lease.validUntil - this.timing.safetyMarginMs) {
      // The timer may have been late (a busy host): the check here is what makes the margin hold.
      this.markLost(lease, 'the lease could not be renewed in time');
      return;
    }
    if (!this.stream) {
      if (this.opening) return;
      this.opening = true;
      this.client.leaseClient
        .leaseKeepAlive()
        .then((s) => {
          this.opening = false;
          const stream = s as unknown as KeepAliveStream;
          if (this.closed || this.lease !== lease) {
            stream.end();
            return;
          }
          this.stream = stream;
          stream.on('data', (res) => this.onKeepAliveResponse(stream, lease, res));
          const broken = (e?: unknown) => {
            if (this.stream !== stream) return;
            if (e) this.lastError = errorText(e);
            this.dropStream();
          };
          stream.on('error', broken);
          stream.on('end', broken);
          stream.on('close', broken);
          this.writeKeepAlive(lease);
        })
        .catch((e: unknown) => {
          this.opening = false;
          this.lastError = errorText(e);
        });
      return;
    }
    this.writeKeepAlive(lease);
  }

  private writeKeepAlive(lease: Lease): void {
    const s = this.stream;
    if (!s) return;
    // Bound the backlog: a server that does not answer gets no more than a few outstanding renewals.
    if (this.pendingSends.length >= 4) {
      this.dropStream();
      return;
    }
    this.pendingSends.push(Date.now());
    try {
      s.write({ ID: lease.id });
    } catch (e) {
      this.lastError = errorText(e);
      this.dropStream();
    }
  }

  private onKeepAliveResponse(stream: KeepAliveStream, lease: Lease, res: { ID: string; TTL: string }): void {
    if (this.stream !== stream) return;
    const sentAt = this.pendingSends.shift();
    if (lease.lost || this.current !== lease) return;
    if (Number(res.TTL) <= 0) {
      this.markLost(lease, 'etcd says the lease has expired');
      return;
    }
    if (sentAt === undefined) return;
    const until = sentAt + Number(res.TTL) * 1000;
    if (until > lease.validUntil) lease.validUntil = until;
    this.lastError = null;
    this.log.debug('cluster lease renewed', { lease: lease.hex, valid_until: lease.validUntil });
    this.armDeadline();
    this.emit('renewed', lease);
  }

  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    const lease = this.lease;
    if (!lease) return;
    const at = lease.validUntil - this.timing.safetyMarginMs;
    this.deadlineTimer = setTimeout(
      () => {
        this.deadlineTimer = null;
        if (this.lease === lease && Date.now() >= lease.validUntil - this.timing.safetyMarginMs) {
          this.markLost(lease, `no lease renewal acknowledged by etcd for ${Math.round((Date.now() - (lease.validUntil - lease.grantedTtlMs)) / 100) / 10} s`);
        } else this.armDeadline();
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Give up on this lease (renewal deadline, or etcd said it is gone). Idempotent. */
  markLost(lease: Lease, reason: string): void {
    if (lease.lost) return;
    lease.lost = true;
    lease.lostReason = reason;
    if (this.current === lease) {
      this.stopKeepAlive();
      if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
      this.deadlineTimer = null;
    }
    // valid_until: the latest instant the server could still hold the lease by our proof (tests check against it).
    this.log.error('cluster lease lost', { lease: lease.hex, reason, valid_until: lease.validUntil, now: Date.now() });
    this.emit('lost', lease, reason);
  }

  /** Note an error from a call made under this lease: "lease not found" means it is gone. */
  noteError(lease: Lease, e: unknown): void {
    this.lastError = errorText(e);
    if (isLeaseGone(e)) this.markLost(lease, 'etcd no longer knows the lease');
  }

  /** Stop renewing; revoke (deletes every key of ours at once) when asked and reachable. */
  async close(revoke: boolean): Promise<void> {
    this.closed = true;
    const lease = this.current;
    this.stopKeepAlive();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    if (lease && !lease.lost && revoke) {
      await this.client.leaseClient.leaseRevoke({ ID: lease.id }).catch((e: unknown) => {
        this.log.warn('cluster lease revoke failed; it will expire by itself', { lease: lease.hex, error: errorText(e) });
      });
    }
    this.current = null;
  }
}
