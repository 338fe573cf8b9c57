#!/usr/bin/env node
// The `lockd` command. Kept tiny: it only loads the compiled CLI, which imports each command lazily.
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`lockd: internal error: ${e?.stack ? e.stack : e}\n`);
    process.exitCode = 125;
  },
);
