// Independent oracle for the eth codec tests: ethers v6 (from tools/,
// pinned) computes what teex computes, and the C test compares.
// Usage: node oracle.js REQUEST.json  -> JSON answer on stdout.
'use strict';
const fs = require('fs');
const ethers = require('ethers');

const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { abi: [], tx: [], eip712: [], keystore_decrypt: [], keystore_encrypt: [] };
const coder = ethers.AbiCoder.defaultAbiCoder();

for (const c of req.abi || []) {
  const pt = ethers.ParamType.from(c.type);
  const enc = coder.encode(pt.components, c.values);
  out.abi.push(enc);
}

(async () => {
  for (const c of req.tx || []) {
    const w = new ethers.Wallet(c.sk);
    const t = Object.assign({}, c.tx);
    if (t.type === 2) t.accessList = [];
    const raw = await w.signTransaction(t);
    out.tx.push({ raw, hash: ethers.keccak256(raw), from: w.address });
  }
  for (const doc of req.eip712 || []) {
    const types = Object.assign({}, doc.types);
    delete types.EIP712Domain;
    out.eip712.push({
      digest: ethers.TypedDataEncoder.hash(doc.domain, types, doc.message),
      domain: ethers.TypedDataEncoder.hashDomain(doc.domain),
    });
  }
  for (const c of req.keystore_decrypt || []) {
    const a = ethers.decryptKeystoreJsonSync(c.json, c.password);
    out.keystore_decrypt.push({ address: a.address, privateKey: a.privateKey });
  }
  for (const c of req.keystore_encrypt || []) {
    const w = new ethers.Wallet(c.sk);
    const json = ethers.encryptKeystoreJsonSync(
      { address: w.address, privateKey: c.sk }, c.password,
      { scrypt: { N: c.n, r: 8, p: 1 } });
    out.keystore_encrypt.push(json);
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
