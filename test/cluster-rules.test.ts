/** The pure parts of cluster locks: FIFO rules per mode, key layout and values, configuration parsing. */
import test from 'ava';
import fc from 'fast-check';
import { blockingEntries, classifyQueue, grantable, type QueueEntry } from '../src/cluster/queue-rules.js';
import { clusterLockKey, contendersPrefix, decodeValue, encodeValue, leaseHex, nameOfClusterKey, prefixRangeEnd, requestKey, slotKey } from '../src/daemon/locks/cluster-keys.js';
import { clusterTiming, parseClusterConfig } from '../src/cluster/config.js';
import { isLockdError } from '../src/util/errors.js';

const entry = (rev: number, mode: QueueEntry['mode'], slots: number | null = null): QueueEntry => ({ key: `k${rev}`, createRevision: rev, mode, slots });

test('exclusive waits for any earlier key; shared only for non-shared ones; slots for N earlier or a foreign one', (t) => {
  t.true(grantable({ mode: 'exclusive', slots: null }, []));
  t.false(grantable({ mode: 'exclusive', slots: null }, [entry(1, 'shared')]));
  t.true(grantable({ mode: 'shared', slots: null }, [entry(1, 'shared'), entry(2, 'shared')]));
  t.false(grantable({ mode: 'shared', slots: null }, [entry(1, 'shared'), entry(2, 'exclusive')]));
  t.true(grantable({ mode: 'slots', slots: 2 }, [entry(1, 'slots', 2)]));
  t.false(grantable({ mode: 'slots', slots: 2 }, [entry(1, 'slots', 2), entry(2, 'slots', 2)]));
  t.false(grantable({ mode: 'slots', slots: 5 }, [entry(1, 'exclusive')]));
  t.deepEqual(
    blockingEntries({ mode: 'shared', slots: null }, [entry(1, 'shared'), entry(2, 'exclusive')]).map((e) => e.createRevision),
    [2],
  );
});

test('classifyQueue: holders never conflict, and a waiter always has an earlier conflicting key (property)', (t) => {
  t.notThrows(() => checkClassify());
});

function checkClassify(): void {
  const modes = fc.constantFrom<QueueEntry['mode']>('exclusive', 'shared', 'slots');
  fc.assert(
    fc.property(fc.array(modes, { maxLength: 12 }), fc.integer({ min: 1, max: 4 }), (ms, n) => {
      const queue = ms.map((m, i) => entry(i + 1, m, m === 'slots' ? n : null));
      const { holders, waiters } = classifyQueue(queue);
      if (holders.length + waiters.length !== queue.length) return false;
      // At most one exclusive holder, and then it is the only one.
      const ex = holders.filter((h) => h.mode === 'exclusive').length;
      if (ex > 1 || (ex === 1 && holders.length > 1)) return false;
      // Never shared and slots holders together; never more slots holders than N.
      const kinds = new Set(holders.map((h) => h.mode));
      if (kinds.size > 1) return false;
      if (holders.filter((h) => h.mode === 'slots').length > n) return false;
      // Every waiter is kept out by at least one earlier key.
      for (const w of waiters) {
        const earlier = queue.filter((q) => q.createRevision < w.createRevision);
        if (blockingEntries({ mode: w.mode, slots: w.slots }, earlier).length === 0) return false;
      }
      // FIFO: the first key is always a holder.
      return queue.length === 0 || holders[0] === queue[0];
    }),
  );
}

test('key layout: etcdctl-compatible contenders prefix, slot keys outside it, lease ids in hex', (t) => {
  t.is(clusterLockKey('lockd', 'x'), 'etcd:lockd/x');
  t.is(nameOfClusterKey('lockd', 'etcd:lockd/x'), 'x');
  t.is(nameOfClusterKey('lockd', '/tmp/global-x.lock'), null);
  t.is(contendersPrefix('lockd', 'x'), 'lockd/x/');
  t.is(contendersPrefix('', 'x'), 'x/');
  t.is(requestKey('lockd', 'x', 'abc', 'run1'), 'lockd/x/abc/run1');
  t.false(slotKey('lockd', 'x', 0).startsWith(contendersPrefix('lockd', 'x')));
  t.is(prefixRangeEnd('lockd/x/').toString(), 'lockd/x0');
  t.is(leaseHex('7587869786123456789'), BigInt('7587869786123456789').toString(16));
  const v = { lockd: 1 as const, host: 'h', kind: 'run' as const, run: 'r', holder: 'me', user: 'u', since: new Date(0).toISOString(), pid: 1, daemon_pid: 1, mode: 'shared' as const };
  t.deepEqual(decodeValue(encodeValue(v)), v);
  t.is(decodeValue(Buffer.alloc(0)), null, 'etcdctl lock writes an empty value: a foreign, exclusive contender');
  t.is(decodeValue(Buffer.from('{"x":1}')), null);
});

test('cluster configuration: URLs, prefixes, TTL and companions are checked', (t) => {
  t.is(parseClusterConfig({ cluster: '', hostName: 'h' }), null);
  const c = parseClusterConfig({ cluster: 'etcd://a:2379,b:2379/team/locks', hostName: 'h' })!;
  t.deepEqual(c.endpoints, ['a:2379', 'b:2379']);
  t.is(c.prefix, 'team/locks');
  t.is(c.ttlSeconds, 10);
  t.false(c.tls);
  t.is(c.onLockLost, 'stop');
  t.true(parseClusterConfig({ cluster: 'etcds://a:2379', hostName: 'h' })!.tls);
  t.is(parseClusterConfig({ cluster: 'etcd://a:2379', prefix: '', hostName: 'h' })!.prefix, '');
  for (const bad of [
    { cluster: 'http://a:1' },
    { cluster: 'etcd://a' },
    { cluster: 'etcd://a:1', ttl: '0' },
    { cluster: 'etcd://a:1', cert: 'c' },
    { cluster: 'etcd://a:1', user: 'u' },
    { cluster: 'etcd://a:1', onLockLost: 'maybe' },
  ]) {
    const e = t.throws(() => parseClusterConfig({ ...bad, hostName: 'h' }));
    t.true(isLockdError(e, 'usage'), JSON.stringify(bad));
  }
  const timing = clusterTiming(2);
  t.true(timing.keepaliveIntervalMs < timing.ttlMs - timing.safetyMarginMs, 'renewals come well before the margin');
  t.true(timing.killGraceMs < timing.safetyMarginMs, 'SIGKILL lands before the lease can expire');
});
