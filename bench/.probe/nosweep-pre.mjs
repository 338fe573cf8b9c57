import { DaemonCore } from '../../dist/src/daemon/core.js';
DaemonCore.prototype.sweepLater = function () {};
