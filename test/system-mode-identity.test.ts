/** identity.ts: passwd/group parsing, the user directory, and holder annotation (no root needed). */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { annotateHolder, claimedHolder, parseGroup, parseGroupLine, parsePasswd, parsePasswdLine, userDirName, UserDirectory } from '../src/daemon/services/identity.js';
import { holderBase } from '../src/daemon/services/holder-base.js';

test('parsePasswdLine reads name, uid, gid, home and shell, and rejects comments, NIS lines and junk', (t) => {
  t.deepEqual(parsePasswdLine('alice:x:1001:1002:Alice A,,,:/home/alice:/bin/bash'), { name: 'alice', uid: 1001, gid: 1002, home: '/home/alice', shell: '/bin/bash' });
  t.is(parsePasswdLine('# comment'), null);
  t.is(parsePasswdLine('+nisuser::::::'), null);
  t.is(parsePasswdLine('bad:x:abc:1:::'), null);
  t.is(parsePasswdLine('short:x:1'), null);
  t.is(parsePasswdLine(':x:1:1:::'), null);
  t.is(parsePasswd('a:x:1:1::/a:/bin/sh\n\n# c\nb:x:2:2::/b:/bin/sh\r\n').length, 2);
});

test('parseGroupLine reads members and tolerates an empty member list', (t) => {
  t.deepEqual(parseGroupLine('lockd-admin:x:990:alice,bob'), { name: 'lockd-admin', gid: 990, members: ['alice', 'bob'] });
  t.deepEqual(parseGroupLine('empty:x:991:'), { name: 'empty', gid: 991, members: [] });
  t.is(parseGroupLine('x:x:y:'), null);
  t.is(parseGroup('a:x:1:\nb:x:2:a\n').length, 2);
});

function tables(t: import('ava').ExecutionContext): { dir: string; passwd: string; group: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ld-id-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, passwd: join(dir, 'passwd'), group: join(dir, 'group') };
}

test('UserDirectory gives a user the primary group plus every group listing them, and notices file changes', (t) => {
  const f = tables(t);
  writeFileSync(f.passwd, 'alice:x:1001:1001::/home/alice:/bin/sh\nbob:x:1002:1002::/home/bob:/bin/sh\n');
  writeFileSync(f.group, 'alice:x:1001:\nbob:x:1002:\nlockd:x:500:alice,bob\nlockd-admin:x:501:bob\n');
  const users = new UserDirectory({ passwdPath: f.passwd, groupPath: f.group, useNss: false });
  const alice = users.userByUid(1001, 7);
  t.deepEqual(alice, { uid: 1001, gid: 1001, name: 'alice', home: '/home/alice', shell: '/bin/sh', groups: [1001, 500], known: true });
  t.deepEqual(users.userByUid(1002, 7).groups, [1002, 500, 501]);
  t.is(users.groupByName('lockd-admin')?.gid, 501);
  t.is(users.groupByName('nope'), null);

  // alice joins the admin group: the next lookup sees it (cache keyed on mtime/size).
  writeFileSync(f.group, 'alice:x:1001:\nbob:x:1002:\nlockd:x:500:alice,bob\nlockd-admin:x:501:bob,alice\n');
  const later = new Date(Date.now() + 5000);
  utimesSync(f.group, later, later);
  t.deepEqual(users.userByUid(1001, 7).groups, [1001, 500, 501]);
});

test('a uid without a passwd entry is named by its number, with the verified gid as its only group', (t) => {
  const f = tables(t);
  writeFileSync(f.passwd, 'alice:x:1001:1001::/home/alice:/bin/sh\n');
  writeFileSync(f.group, '');
  const users = new UserDirectory({ passwdPath: f.passwd, groupPath: f.group, useNss: false });
  t.deepEqual(users.userByUid(4242, 77), { uid: 4242, gid: 77, name: '4242', home: '/', shell: '/bin/sh', groups: [77], known: false });
});

test('annotateHolder adds the verified user; a claim naming someone else says who really sent it', (t) => {
  const alice = { name: 'alice', uid: 1001 };
  t.is(annotateHolder('alice', alice), 'alice (uid 1001)');
  t.is(annotateHolder('alice@host', alice), 'alice@host (uid 1001)');
  t.is(annotateHolder('root', alice), 'root (by alice, uid 1001)');
  t.is(annotateHolder('ci:github:o/r#1-1/build@runner:4242', alice), 'ci:github:o/r#1-1/build@runner:4242 (by alice, uid 1001)');
  // A forged annotation in the claim is replaced, never kept.
  t.is(annotateHolder('root (uid 0)', alice), 'root (by alice, uid 1001)');
  t.is(annotateHolder('alice (by root, uid 0)', alice), 'alice (uid 1001)');
});

test('claimedHolder undoes annotateHolder, so CI holders still compare by job across pids', (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), fc.stringMatching(/^[a-z_][a-z0-9_-]{0,15}$/), fc.nat(0xfffffffe), (claim, name, uid) => {
      const stored = annotateHolder(claim, { name, uid });
      // Re-annotating is stable, and the claim (minus any forged annotation) comes back.
      return annotateHolder(claimedHolder(stored), { name, uid }) === stored && claimedHolder(stored) === claimedHolder(claim);
    }),
  );
  const who = { name: 'alice', uid: 1001 };
  const a = annotateHolder('ci:github:o/r#1-1/build@runner:4242', who);
  const b = annotateHolder('ci:github:o/r#1-1/build@runner:5151', who);
  t.is(holderBase(claimedHolder(a)), holderBase(claimedHolder(b)));
  t.not(a, b);
});

test('userDirName keeps ordinary names and falls back to the uid for odd ones', (t) => {
  t.is(userDirName({ name: 'alice', uid: 1 }), 'alice');
  t.is(userDirName({ name: 'svc.build-1', uid: 2 }), 'svc.build-1');
  t.is(userDirName({ name: '..', uid: 3 }), 'uid-3');
  t.is(userDirName({ name: 'a/b', uid: 4 }), 'uid-4');
  t.is(userDirName({ name: '', uid: 5 }), 'uid-5');
});
