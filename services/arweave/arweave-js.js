// arweave-js (the reference client) and arbundles as a command-line tool, for cross-implementation
// tests and bench/arweave.py. Every command prints one JSON document.
//   node arweave-js.js data-root FILE...              data_root and chunk proofs' offsets per file
//   node arweave-js.js verify-tx TX.json              does arweave-js accept the signed header?
//   node arweave-js.js sign-tx GATEWAY JWK FILE       a header signed by arweave-js (not posted)
//   node arweave-js.js upload GATEWAY JWK FILE        upload by chunks, one at a time (arweave-js's way)
//   node arweave-js.js download GATEWAY ID OUT        GET /{id} into OUT
//   node arweave-js.js verify-item ITEM.bin           does arbundles accept the ANS-104 data item?
//   node arweave-js.js sign-item JWK FILE OUT         an ANS-104 data item signed by arbundles
const fs = require('fs');
const Arweave = require('arweave');
const merkle = require('arweave/node/lib/merkle');
const Transaction = require('arweave/node/lib/transaction').default;
const arbundles = require('arbundles');

function client(gateway) {
  const url = new URL(gateway);
  return Arweave.init({ host: url.hostname, port: Number(url.port), protocol: url.protocol.replace(':', ''),
    timeout: 600000, logging: false });
}
const b64 = (bytes) => Arweave.utils.bufferTob64Url(bytes);
const now = () => Number(process.hrtime.bigint()) / 1e9;

const commands = {
  async 'data-root'(...files) {
    const out = [];
    for (const file of files) {
      const chunks = await merkle.generateTransactionChunks(fs.readFileSync(file));
      out.push({ data_root: b64(chunks.data_root), offsets: chunks.proofs.map((p) => p.offset) });
    }
    return out;
  },
  async 'verify-tx'(file) {
    const tx = new Transaction(JSON.parse(fs.readFileSync(file)));
    return { valid: await client('http://127.0.0.1:1').transactions.verify(tx) };
  },
  async 'sign-tx'(gateway, jwkFile, file) {
    const arweave = client(gateway);
    const jwk = JSON.parse(fs.readFileSync(jwkFile));
    const tx = await arweave.createTransaction({ data: fs.readFileSync(file) }, jwk);
    tx.addTag('App-Name', 'arweave-js-test');
    tx.addTag('Grüße', 'naïve ✓');
    await arweave.transactions.sign(tx, jwk);
    const doc = tx.toJSON();
    doc.data = '';
    return doc;
  },
  async upload(gateway, jwkFile, file) {
    const arweave = client(gateway);
    const jwk = JSON.parse(fs.readFileSync(jwkFile));
    const data = fs.readFileSync(file);
    const started = now();
    const tx = await arweave.createTransaction({ data }, jwk);
    tx.addTag('App-Name', 'arweave-js-test');
    await arweave.transactions.sign(tx, jwk);
    const uploader = await arweave.transactions.getUploader(tx);
    while (!uploader.isComplete) {
      await uploader.uploadChunk();
      if (uploader.lastResponseError) throw new Error(`upload failed: ${uploader.lastResponseError}`);
    }
    return { id: tx.id, seconds: now() - started };
  },
  async download(gateway, id, out) {
    const arweave = client(gateway);
    const started = now();
    const response = await arweave.api.get(`/${id}`, { responseType: 'arraybuffer' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const seconds = now() - started;
    fs.writeFileSync(out, Buffer.from(response.data));
    return { size: response.data.byteLength, seconds };
  },
  async 'verify-item'(file) {
    const item = new arbundles.DataItem(fs.readFileSync(file));
    return { valid: await item.isValid(), id: item.id,
      tags: item.tags.map((t) => [t.name, t.value]), data: b64(item.rawData) };
  },
  async 'sign-item'(jwkFile, file, out) {
    const signer = new arbundles.signers.ArweaveSigner(JSON.parse(fs.readFileSync(jwkFile)));
    const item = arbundles.createData(fs.readFileSync(file), signer,
      { tags: [{ name: 'App-Name', value: 'arbundles-test' }, { name: 'Grüße', value: 'naïve ✓' }] });
    await item.sign(signer);
    fs.writeFileSync(out, item.getRaw());
    return { id: item.id };
  },
};

const [command, ...args] = process.argv.slice(2);
if (!commands[command]) {
  console.error(`unknown command ${command}; one of ${Object.keys(commands).join(', ')}`);
  process.exit(2);
}
commands[command](...args).then(
  (result) => process.stdout.write(JSON.stringify(result) + '\n'),
  (err) => { console.error(err.stack || String(err)); process.exit(1); },
);
