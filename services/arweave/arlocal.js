// Start arlocal (a local Arweave gateway) on 127.0.0.1 only: node arlocal.js PORT DB_DIR
// arlocal's own CLI listens on every interface and has no host flag.
const ArLocal = require('arlocal').default;

const port = Number(process.argv[2] || 1984);
const dbPath = process.argv[3];
const arlocal = new ArLocal(port, false, dbPath, false);
const listen = arlocal.app.listen.bind(arlocal.app);
arlocal.app.listen = (p, callback) => listen(p, '127.0.0.1', callback);
arlocal.start().catch((err) => { console.error(err); process.exit(1); });
const stop = () => arlocal.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
