// Test and benchmark harness for the teex contracts, driven by ethers from
// tools/node_modules: starts a real anvil node on a free loopback port,
// deploys the compiled artifacts (<build>/contracts/*.json), and implements
// docs/settlement.md independently of the contracts (EIP-712 signing, receipt
// leaves, the sorted-pair Merkle tree) so tests can check one against the other.
// ethers is a test driver here, not part of teex: the teex binary speaks to
// the chain through its own C client.
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "..", "..");
const require = createRequire(path.join(root, "tools", "package.json"));
export const { ethers } = require("ethers");

export const MNEMONIC = "test test test test test test test test test test test junk";
const coder = ethers.AbiCoder.defaultAbiCoder();

export function anvilBinary() {
  const pkg = `@foundry-rs/anvil-${process.platform}-${process.arch === "x64" ? "amd64" : process.arch}`;
  const dir = path.dirname(require.resolve(`${pkg}/package.json`));
  return path.join(dir, "bin", "anvil");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// Starts anvil on 127.0.0.1:<free port>; returns { url, provider, stop() }.
export async function startAnvil(extraArgs = []) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn(anvilBinary(), ["--host", "127.0.0.1", "--port", String(port), "--mnemonic", MNEMONIC,
                                       "--accounts", "20", "--balance", "100000", ...extraArgs],
                       { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    proc.stderr.on("data", (d) => { stderr += d; });
    const exited = new Promise((r) => proc.once("exit", () => r(true)));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) break;
      try {
        const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" },
                                       body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }) });
        if (res.ok) {
          const provider = new ethers.JsonRpcProvider(url, undefined, { staticNetwork: true, batchMaxCount: 1, cacheTimeout: -1, pollingInterval: 10 });
          provider.pollingInterval = 20;
          const stop = async () => {
            provider.destroy();
            if (proc.exitCode === null) { proc.kill("SIGTERM"); await exited; }
          };
          return { url, port, provider, stop };
        }
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 30));
    }
    if (proc.exitCode === null) { proc.kill("SIGKILL"); await exited; }
    if (!/address already in use/i.test(stderr)) throw new Error(`anvil did not start: ${stderr}`);
  }
  throw new Error("anvil: no free port after 5 attempts");
}

/// Waits for a sent transaction's receipt by polling eth_getTransactionReceipt
/// (ethers' own wait() listens for new blocks and was seen to miss one under
/// load); throws if it reverted or no receipt came within timeoutMs.
export async function mined(txPromise, timeoutMs = 120000) {
  const tx = await txPromise;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await tx.provider.getTransactionReceipt(tx.hash);
    if (r) {
      if (r.status !== 1) throw new Error(`transaction ${tx.hash} reverted`);
      return r;
    }
    if (Date.now() > deadline) throw new Error(`no receipt for ${tx.hash}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

/// The deterministic anvil accounts as ethers wallets bound to provider.
export function accounts(provider, n = 20) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).connect(provider));
  }
  return out;
}

export function contractsDir() {
  const d = process.env.TEEX_CONTRACTS_DIR || path.join(root, "build", "contracts");
  if (!fs.existsSync(path.join(d, "Settlement.json"))) {
    throw new Error(`no compiled contracts in ${d}: build first (cmake --build build) or set TEEX_CONTRACTS_DIR`);
  }
  return d;
}

export function artifact(name) {
  return JSON.parse(fs.readFileSync(path.join(contractsDir(), `${name}.json`), "utf8"));
}

/// Deploys EnclaveRegistry, ServiceRegistry and Settlement; SM address and
/// withdrawal delay as given.
export async function deployAll(deployer, smAddress, withdrawalDelay) {
  const deploy = async (name, ...args) => {
    const a = artifact(name);
    const c = await new ethers.ContractFactory(a.abi, a.bytecode, deployer).deploy(...args);
    await c.waitForDeployment();
    return c;
  };
  const enclaves = await deploy("EnclaveRegistry", smAddress);
  const services = await deploy("ServiceRegistry", smAddress);
  const settlement = await deploy("Settlement", await enclaves.getAddress(), withdrawalDelay);
  const datasets = await deploy("DatasetRegistry");
  return { enclaves, services, settlement, datasets };
}

// ---- docs/settlement.md, implemented independently of the contracts ----

export const TYPES = {
  PaymentAuthorization: [
    { name: "user", type: "address" }, { name: "dispatcher", type: "address" },
    { name: "taskId", type: "bytes32" }, { name: "serviceId", type: "bytes32" },
    { name: "imageHash", type: "bytes32" }, { name: "datasetsHash", type: "bytes32" },
    { name: "price", type: "uint256" }, { name: "cumulative", type: "uint256" },
  ],
  Receipt: [
    { name: "taskId", type: "bytes32" }, { name: "serviceId", type: "bytes32" },
    { name: "imageHash", type: "bytes32" }, { name: "user", type: "address" },
    { name: "dispatcher", type: "address" }, { name: "worker", type: "address" },
    { name: "provider", type: "address" }, { name: "inputCommitment", type: "bytes32" },
    { name: "outputCommitment", type: "bytes32" }, { name: "price", type: "uint256" },
    { name: "workerAmount", type: "uint256" }, { name: "providerAmount", type: "uint256" },
    { name: "dataSharesHash", type: "bytes32" },
  ],
  ServiceListing: [
    { name: "serviceId", type: "bytes32" }, { name: "provider", type: "address" },
    { name: "version", type: "uint32" }, { name: "signingKey", type: "address" },
    { name: "encryptionKey", type: "bytes32" }, { name: "imageHash", type: "bytes32" },
  ],
  EnclaveRegistration: [
    { name: "enclave", type: "address" }, { name: "role", type: "uint8" },
    { name: "measurement", type: "bytes32" }, { name: "issuedAt", type: "uint64" },
  ],
  EnclaveRevocation: [{ name: "enclave", type: "address" }],
};

export function domain(chainId, verifyingContract) {
  return { name: "teex", version: "1", chainId, verifyingContract };
}

/// Signs `value` of EIP-712 type `type`; returns { v, r, s }.
export async function signTyped(wallet, dom, type, value) {
  const sig = ethers.Signature.from(await wallet.signTypedData(dom, { [type]: TYPES[type] }, value));
  return { v: sig.v, r: sig.r, s: sig.s };
}

export const RECEIPT_LEAF_TAG = ethers.keccak256(ethers.toUtf8Bytes("teex/settlement/v1/receipt-leaf"));

export function dataSharesHash(shares) {
  return ethers.keccak256(ethers.concat(
    shares.map((d) => coder.encode(["bytes32", "address", "uint256"], [d.datasetId, d.payee, d.amount]))));
}

export function receiptLeaf(r, shares) {
  return ethers.keccak256(coder.encode(
    ["bytes32", "bytes32", "bytes32", "bytes32", "address", "address", "address", "address",
     "bytes32", "bytes32", "uint256", "uint256", "uint256", "bytes32"],
    [RECEIPT_LEAF_TAG, r.taskId, r.serviceId, r.imageHash, r.user, r.dispatcher, r.worker, r.provider,
     r.inputCommitment, r.outputCommitment, r.price, r.workerAmount, r.providerAmount, dataSharesHash(shares)]));
}

function hashPair(a, b) {
  return BigInt(a) < BigInt(b) ? ethers.keccak256(ethers.concat([a, b])) : ethers.keccak256(ethers.concat([b, a]));
}

/// Sorted-pair Merkle tree (docs/settlement.md §3.2): { root, proof(i) }.
export function merkleTree(leaves) {
  if (leaves.length === 0) throw new Error("empty tree");
  const levels = [leaves.slice()];
  while (levels[levels.length - 1].length > 1) {
    const cur = levels[levels.length - 1];
    const next = [];
    for (let i = 0; i < cur.length; i += 2) next.push(i + 1 < cur.length ? hashPair(cur[i], cur[i + 1]) : cur[i]);
    levels.push(next);
  }
  const proof = (index) => {
    const p = [];
    let i = index;
    for (let l = 0; l < levels.length - 1; l++) {
      const sib = i ^ 1;
      if (sib < levels[l].length) p.push(levels[l][sib]);
      i >>= 1;
    }
    return p;
  };
  return { root: levels[levels.length - 1][0], proof };
}

export function commit(salt, data) {
  return ethers.keccak256(ethers.concat([salt, data]));
}

export const EMPTY_DATASETS = ethers.keccak256("0x");

/// Builds a batch of tasks off chain as a dispatcher would: receipts, their
/// tree, per-user highest authorisation and per-payee credits.
/// tasks: [{ user (wallet), worker, provider, serviceId, imageHash, workerAmount, providerAmount, shares? }]
/// cumulative: Map user address -> cumulative before this batch (updated in place).
export async function buildBatch({ tasks, dispatcher, chainId, settlementAddress, cumulative }) {
  const dom = domain(chainId, settlementAddress);
  const latest = new Map();
  const creditMap = new Map();
  const receipts = [];
  const leaves = [];
  for (const t of tasks) {
    const shares = t.shares || [];
    const price = t.workerAmount + t.providerAmount + shares.reduce((s, d) => s + d.amount, 0n);
    const user = t.user.address;
    const cum = (cumulative.get(user) || 0n) + price;
    cumulative.set(user, cum);
    const taskId = ethers.hexlify(ethers.randomBytes(32));
    const datasetsHash = shares.length ? ethers.keccak256(ethers.concat(shares.map((d) => d.datasetId))) : EMPTY_DATASETS;
    latest.set(user, { wallet: t.user, value: { user, dispatcher, taskId, serviceId: t.serviceId, imageHash: t.imageHash,
                                                datasetsHash, price, cumulative: cum } });
    const r = { taskId, serviceId: t.serviceId, imageHash: t.imageHash, user, dispatcher, worker: t.worker,
                provider: t.provider, inputCommitment: commit(ethers.randomBytes(32), ethers.toUtf8Bytes("in")),
                outputCommitment: commit(ethers.randomBytes(32), ethers.toUtf8Bytes("out")),
                price, workerAmount: t.workerAmount, providerAmount: t.providerAmount };
    receipts.push({ r, shares });
    leaves.push(receiptLeaf(r, shares));
    const add = (a, v) => { if (v > 0n) creditMap.set(a, (creditMap.get(a) || 0n) + v); };
    add(t.worker, t.workerAmount);
    add(t.provider, t.providerAmount);
    for (const d of shares) add(d.payee, d.amount);
  }
  const auths = [];
  for (const { wallet, value } of latest.values()) {
    // Only the task's user signs; the batch carries the highest (latest) one.
    const sig = await signTyped(wallet, dom, "PaymentAuthorization", value);
    auths.push({ user: value.user, taskId: value.taskId, serviceId: value.serviceId, imageHash: value.imageHash,
                 datasetsHash: value.datasetsHash, price: value.price, cumulative: value.cumulative, ...sig });
  }
  const credits = [...creditMap.entries()].map(([payee, amount]) => ({ payee, amount }));
  const tree = merkleTree(leaves);
  return { receipts, leaves, tree, root: tree.root, auths, credits };
}

function revertData(e) {
  for (const d of [e.data, e.info?.error?.data, e.error?.data, e.info?.error?.data?.data]) {
    if (typeof d === "string" && d.startsWith("0x") && d.length >= 10) return d;
  }
  return null;
}

let allErrors = null;
/// Decodes a revert as a custom error of any teex contract: { name, args } or null.
export function decodeRevert(e) {
  if (e.revert?.name) return e.revert;
  const data = revertData(e);
  if (!data) return null;
  if (!allErrors) {
    // Every compiled contract, so a new one needs no change here.
    allErrors = fs.readdirSync(contractsDir()).filter((f) => f.endsWith(".json")).sort()
      .map((f) => new ethers.Interface(artifact(f.slice(0, -5)).abi));
  }
  for (const iface of allErrors) {
    try {
      const err = iface.parseError(data);
      if (err) return { name: err.name, args: err.args };
    } catch { /* not this contract's error */ }
  }
  return null;
}

/// Expects `promise` to revert with custom error `name`; returns its args.
export async function expectRevert(promise, name) {
  try {
    await promise;
  } catch (e) {
    const got = decodeRevert(e);
    if (got?.name === name) return got.args;
    throw new Error(`expected revert ${name}, got ${got?.name || e.shortMessage || e.message}`);
  }
  throw new Error(`expected revert ${name}, but the call succeeded`);
}
