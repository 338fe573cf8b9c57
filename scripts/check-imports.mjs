#!/usr/bin/env node
/**
 * The import rules of src/, checked in CI (`npm run lint`): no import circle anywhere (static imports, `import type`
 * and dynamic `import()` alike), and the daemon's dependency on the cluster backend points one way (src/cluster/
 * may import src/daemon/, never the reverse: the daemon owns the interface, daemon/locks/cluster-port.ts), and the
 * optional etcd3 is loaded only through src/cluster/etcd-module.ts.
 * Prints every circle and every broken rule, one per line, and exits 1 if there is any.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) files.push(p);
  }
})(src);

// Static `from '…'`, bare `import '…'` and `import('…')` with a literal: every edge a reader would follow.
const SPEC = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;
const edges = new Map();
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const out = new Set();
  for (const m of text.matchAll(SPEC)) {
    const target = resolve(dirname(f), m[1]).replace(/\.js$/, '.ts');
    if (target.startsWith(src)) out.add(target);
  }
  edges.set(f, [...out]);
}

const problems = [];
const rel = (p) => relative(root, p);
for (const [f, outs] of edges) {
  for (const t of outs) {
    if (rel(f).startsWith('src/daemon/') && rel(t).startsWith('src/cluster/'))
      problems.push(`rule: ${rel(f)} imports ${rel(t)} (the daemon must not depend on src/cluster/; use daemon/locks/cluster-port.ts)`);
    // lockd web is a client of the daemon (docs/operations.md, "lockd web"): the daemon never serves HTTP, and the
    // page never reaches into the daemon's parts, only its protocol.
    if (rel(f).startsWith('src/daemon/') && rel(t).startsWith('src/web/')) problems.push(`rule: ${rel(f)} imports ${rel(t)} (the daemon must not serve the web page)`);
    if (rel(f).startsWith('src/web/') && rel(t).startsWith('src/daemon/')) problems.push(`rule: ${rel(f)} imports ${rel(t)} (lockd web is a client: use src/api/ and src/protocol/)`);
  }
}

// The daemon's parts (src/daemon/<part>/index.ts says what each owns): server/ sits on top and only start-up
// (main.ts) may reach into it, bar the types every part shares (a connection, the logger); locks/ stays pure.
const SHARED_SERVER = new Set(['src/daemon/server/connection.ts', 'src/daemon/server/logger.ts']);
const PARTS = ['locks', 'jobs', 'records', 'services'];
for (const [f, outs] of edges) {
  const from = rel(f);
  const part = PARTS.find((p) => from.startsWith(`src/daemon/${p}/`));
  if (!part) continue;
  for (const t of outs) {
    const to = rel(t);
    if (to.startsWith('src/daemon/server/') && !SHARED_SERVER.has(to)) problems.push(`rule: ${from} imports ${to} (only main.ts may use server/; take what you need as a context from ports.ts)`);
    if (part === 'locks' && /^src\/daemon\/(jobs|services)\//.test(to)) problems.push(`rule: ${from} imports ${to} (locks/ is the pure lock table)`);
    if (part === 'locks' && to.startsWith('src/daemon/records/') && to !== 'src/daemon/records/lock-resolve.ts') problems.push(`rule: ${from} imports ${to} (locks/ is the pure lock table)`);
  }
}

// etcd3 is an optional package (src/cluster/etcd-module.ts): only cluster mode may load it. So outside src/cluster/,
// nothing imports src/cluster/ statically except its etcd3-free files, which import neither etcd3 nor the rest of
// src/cluster/ statically themselves. (`import type` is erased, and `import()` is what loadClusterBackend does.)
const ETCD_FREE = new Set(['src/cluster/config.ts', 'src/cluster/etcd-module.ts']);
const STATIC_VALUE = /^\s*(?:import|export)\s+(?!type\b)[^'";]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm;
for (const f of files) {
  const from = rel(f);
  const inCluster = from.startsWith('src/cluster/');
  if (inCluster && !ETCD_FREE.has(from)) continue;
  for (const m of readFileSync(f, 'utf8').matchAll(STATIC_VALUE)) {
    const spec = m[1] ?? m[2];
    if (spec === 'etcd3' || spec.startsWith('etcd3/')) {
      problems.push(`rule: ${from} imports etcd3 statically (an optional package: load it through src/cluster/etcd-module.ts)`);
      continue;
    }
    if (!spec.startsWith('.')) continue;
    const to = rel(resolve(dirname(f), spec).replace(/\.js$/, '.ts'));
    if (to.startsWith('src/cluster/') && !ETCD_FREE.has(to)) problems.push(`rule: ${from} imports ${to} statically (it may load etcd3, an optional package: use src/cluster/etcd-module.ts)`);
  }
}

// Tarjan's strongly connected components: each component of more than one file (or a self-import) is a circle.
let index = 0;
const idx = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
function strong(v) {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  onStack.add(v);
  for (const w of edges.get(v) ?? []) {
    if (!edges.has(w)) continue;
    if (!idx.has(w)) {
      strong(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1 || (edges.get(v) ?? []).includes(v)) problems.push(`circle: ${comp.map(rel).sort().join(' ↔ ')}`);
  }
}
for (const f of files) if (!idx.has(f)) strong(f);

for (const p of problems) console.error(p);
console.log(`imports: ${files.length} files, ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);
