import { promises } from 'node:fs';
const fh = await promises.open('/dev/null', 'r');
const proto = Object.getPrototypeOf(fh);
proto.sync = async function () {};
proto.datasync = async function () {};
await fh.close();
