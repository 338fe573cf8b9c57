import { main } from '../../dist/src/cli/main.unb.js'; main(process.argv.slice(2)).then((c) => { process.exitCode = c; });
