#!/usr/bin/env node
// Audits a settlement batch content (docs/settlement.md §4.2) independently
// of teex's C code, with ethers: decodes it, checks the magic, recomputes
// every receipt leaf and the Merkle root, checks every worker signature
// (EIP-712 Receipt), every authorisation signature, that each receipt's
// split adds up, and that the credits are the sums of the receipts' splits.
//   node contracts/js/audit_batch.mjs FILE   (FILE: the raw bytes, or 0x-hex)
// Prints a one-line JSON summary; exits 1 with a reason on the first problem.
import fs from "node:fs";
import { ethers, TYPES, domain, receiptLeaf, merkleTree } from "./harness.mjs";

const T_SHARE = "(bytes32,address,uint256)";
const T_RECEIPT = `(bytes32,bytes32,bytes32,address,address,address,address,bytes32,bytes32,uint256,uint256,uint256,${T_SHARE}[],uint8,bytes32,bytes32)`;
const T_AUTH = "(address,bytes32,bytes32,bytes32,bytes32,uint256,uint256,uint8,bytes32,bytes32)";
const T_CONTENT = `(bytes32,uint256,address,address,bytes32,bytes32,${T_RECEIPT}[],${T_AUTH}[],(address,uint256)[])`;

function fail(msg) {
  console.error(`audit: ${msg}`);
  process.exit(1);
}

const raw = fs.readFileSync(process.argv[2]);
const text = raw.toString("latin1").trim();
const data = text.startsWith("0x") ? text : ethers.hexlify(raw);
const [c] = ethers.AbiCoder.defaultAbiCoder().decode([T_CONTENT], data);
const [magic, chainId, settlement, dispatcher, batchId, root, receipts, auths, credits] = c;
if (magic !== ethers.keccak256(ethers.toUtf8Bytes("teex/settlement/v1/batch"))) fail("bad magic");
const dom = domain(chainId, settlement);
const leaves = [];
const owed = new Map();
const add = (a, v) => owed.set(a, (owed.get(a) || 0n) + v);
receipts.forEach((x, i) => {
  const r = { taskId: x[0], serviceId: x[1], imageHash: x[2], user: x[3], dispatcher: x[4], worker: x[5],
              provider: x[6], inputCommitment: x[7], outputCommitment: x[8], price: x[9], workerAmount: x[10],
              providerAmount: x[11] };
  const shares = x[12].map((d) => ({ datasetId: d[0], payee: d[1], amount: d[2] }));
  if (r.dispatcher !== dispatcher) fail(`receipt ${i}: another dispatcher`);
  const split = r.workerAmount + r.providerAmount + shares.reduce((s, d) => s + d.amount, 0n);
  if (split !== r.price) fail(`receipt ${i}: split ${split} != price ${r.price}`);
  const leaf = receiptLeaf(r, shares);
  leaves.push(leaf);
  const dsh = ethers.keccak256(ethers.concat(shares.map((d) => ethers.AbiCoder.defaultAbiCoder().encode(
    ["bytes32", "address", "uint256"], [d.datasetId, d.payee, d.amount]))));
  const digest = ethers.TypedDataEncoder.hash(dom, { Receipt: TYPES.Receipt }, { ...r, dataSharesHash: dsh });
  const signer = ethers.recoverAddress(digest, { v: Number(x[13]), r: x[14], s: x[15] });
  if (signer !== r.worker) fail(`receipt ${i}: signed by ${signer}, not the worker ${r.worker}`);
  add(r.worker, r.workerAmount);
  add(r.provider, r.providerAmount);
  for (const d of shares) add(d.payee, d.amount);
});
if (merkleTree(leaves).root !== root) fail("the receipts do not hash to the root");
auths.forEach((a, i) => {
  const value = { user: a[0], dispatcher, taskId: a[1], serviceId: a[2], imageHash: a[3], datasetsHash: a[4],
                  price: a[5], cumulative: a[6] };
  const digest = ethers.TypedDataEncoder.hash(dom, { PaymentAuthorization: TYPES.PaymentAuthorization }, value);
  if (ethers.recoverAddress(digest, { v: Number(a[7]), r: a[8], s: a[9] }) !== value.user) {
    fail(`authorisation ${i}: not signed by its user`);
  }
});
let total = 0n;
for (const [payee, amount] of credits) {
  if ((owed.get(payee) || 0n) !== amount) fail(`credit to ${payee}: ${amount}, receipts give ${owed.get(payee) || 0n}`);
  owed.delete(payee);
  total += amount;
}
for (const [payee, amount] of owed) if (amount > 0n) fail(`no credit for ${payee} (owed ${amount})`);
console.log(JSON.stringify({ ok: true, batchId, root, receipts: receipts.length, authorisations: auths.length,
                             total: total.toString() }));
