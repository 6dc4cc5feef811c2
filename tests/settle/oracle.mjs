// Independent implementation of docs/settlement.md §2.3 and §3 with ethers
// (a test oracle only). Reads receipts as JSON on stdin, prints one line per
// receipt leaf, then the root, then each leaf's proof as comma-separated hex.
import { createRequire } from "node:module";
import path from "node:path";
import fs from "node:fs";

const root = path.resolve(process.env.TEEX_SOURCE_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), "..", ".."));
const require = createRequire(path.join(root, "tools", "package.json"));
const { ethers } = require("ethers");
const coder = ethers.AbiCoder.defaultAbiCoder();

const receipts = JSON.parse(fs.readFileSync(0, "utf8"));
const TAG = ethers.keccak256(ethers.toUtf8Bytes("teex/settlement/v1/receipt-leaf"));

function sharesHash(shares) {
  const parts = shares.map((s) => coder.encode(["bytes32", "address", "uint256"], [s.datasetId, s.payee, s.amount]));
  return ethers.keccak256(ethers.concat(parts));
}

const leaves = receipts.map((r) => ethers.keccak256(coder.encode(
  ["bytes32", "bytes32", "bytes32", "bytes32", "address", "address", "address", "address",
   "bytes32", "bytes32", "uint256", "uint256", "uint256", "bytes32"],
  [TAG, r.taskId, r.serviceId, r.imageHash, r.user, r.dispatcher, r.worker, r.provider,
   r.inputCommitment, r.outputCommitment, r.price, r.workerAmount, r.providerAmount, sharesHash(r.shares)])));

function pair(a, b) {
  return BigInt(a) <= BigInt(b) ? ethers.keccak256(ethers.concat([a, b])) : ethers.keccak256(ethers.concat([b, a]));
}

function tree(level, index) {
  const proof = [];
  while (level.length > 1) {
    const sib = index ^ 1;
    if (sib < level.length) proof.push(level[sib]);
    const next = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(pair(level[i], level[i + 1]));
    if (level.length % 2 === 1) next.push(level[level.length - 1]);
    level = next;
    index = Math.floor(index / 2);
  }
  return { root: level[0], proof };
}

for (const l of leaves) console.log(l);
console.log(tree(leaves, 0).root);
for (let i = 0; i < leaves.length; i++) console.log(tree(leaves, i).proof.join(","));
