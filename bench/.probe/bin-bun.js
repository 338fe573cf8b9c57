import { main } from '../../dist/src/cli/main.js'; main(process.argv.slice(2)).then((c) => { process.exitCode = c; });
