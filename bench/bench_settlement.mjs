#!/usr/bin/env node
// Gas per task of batched settlement against settling each task in its own
// transaction (a batch of one, through the same Settlement contract), on a
// real anvil node started here, in the same run.
//   node bench/bench_settlement.mjs [--contracts build/contracts] [--sizes 1,10,100,1000]
//                                   [--per-task-max M]  (baseline: first M tasks of each N; default all)
// Parties: 10 users, 5 workers, 3 providers (tasks assigned round-robin).
// Every party is warmed up first (one settled task each), so both modes are
// measured in the steady state a running dispatcher sees: balances and
// settled amounts already non-zero. Gas is the whole transaction's gasUsed
// (21,000 base + calldata + execution).
import { startAnvil, accounts, deployAll, domain, signTyped, buildBatch, mined, ethers } from "../contracts/js/harness.mjs";

const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  if (args[i] === "--contracts") process.env.TEEX_CONTRACTS_DIR = args[i + 1];
  else if (args[i] === "--sizes") process.env.BENCH_SIZES = args[i + 1];
  else if (args[i] === "--per-task-max") process.env.BENCH_PER_TASK_MAX = args[i + 1];
  else { console.error(`unknown option ${args[i]}`); process.exit(2); }
}
const SIZES = (process.env.BENCH_SIZES || "1,10,100,1000").split(",").map(Number);
// One transaction per task costs the same for every task (same shape, warm
// storage), so the baseline may be sampled on the first M tasks of each N.
const PER_TASK_MAX = Number(process.env.BENCH_PER_TASK_MAX || "1000000");
const USERS = 10, WORKERS = 5, PROVIDERS = 3;

const chain = await startAnvil(["--gas-limit", "100000000"]);
try {
  const acct = accounts(chain.provider, 20);
  const chainId = (await chain.provider.getNetwork()).chainId;
  const sm = ethers.Wallet.createRandom();
  const dispatcher = acct[1];
  const c = await deployAll(acct[0], sm.address, 86400n);
  const settlementAddress = await c.settlement.getAddress();
  const issuedAt = BigInt((await chain.provider.getBlock("latest")).timestamp);
  const regSig = await signTyped(sm, domain(chainId, await c.enclaves.getAddress()), "EnclaveRegistration",
                                 { enclave: dispatcher.address, role: 2, measurement: ethers.ZeroHash, issuedAt });
  await mined(c.enclaves.register(dispatcher.address, 2, ethers.ZeroHash, issuedAt, regSig));

  const users = acct.slice(2, 2 + USERS);
  const workers = Array.from({ length: WORKERS }, () => ethers.Wallet.createRandom().address);
  const providers = Array.from({ length: PROVIDERS }, () => ethers.Wallet.createRandom().address);
  for (const u of users) {
    await mined(c.settlement.connect(u).deposit(dispatcher.address, { value: ethers.parseEther("100") }));
  }
  const serviceId = ethers.id("bench/service");
  const imageHash = ethers.id("bench/image");
  const tasks = (n, offset = 0) => Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    return { user: users[i % USERS], worker: workers[i % WORKERS], provider: providers[i % PROVIDERS],
             serviceId, imageHash, workerAmount: 600000000000000n, providerAmount: 400000000000000n };
  });
  const cumulative = new Map();
  const s = c.settlement.connect(dispatcher);
  let seq = 0;
  const settle = async (batchTasks) => {
    const b = await buildBatch({ tasks: batchTasks, dispatcher: dispatcher.address, chainId, settlementAddress,
                                 cumulative });
    const batchId = ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["address", "uint256"],
                                                                               [dispatcher.address, ++seq]));
    const cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"; // a CIDv1 of the batch's length class
    const rc = await mined(s.settleBatch(batchId, b.root, batchTasks.length, cid, b.auths, b.credits));
    return rc.gasUsed;
  };

  // Warm-up: every user, worker and provider takes part once (cold storage).
  const coldGas = await settle(tasks(Math.max(USERS, WORKERS, PROVIDERS) * 3));

  const rows = [];
  for (const n of SIZES) {
    const batched = await settle(tasks(n));
    let single = 0n;
    const ts = tasks(Math.min(n, PER_TASK_MAX));
    let min = Infinity, max = 0;
    for (const t of ts) {
      const g = await settle([t]);
      single += g;
      min = Math.min(min, Number(g));
      max = Math.max(max, Number(g));
    }
    const perBatched = Number(batched) / n;
    const perSingle = Number(single) / ts.length;
    rows.push({ n, batched: Number(batched), perBatched, perSingle, ratio: perSingle / perBatched, sampled: ts.length,
                min, max });
  }
  console.log(`anvil ${chain.url}, chain id ${chainId}; ${USERS} users, ${WORKERS} workers, ${PROVIDERS} providers`);
  console.log(`warm-up batch touching every party cold: ${coldGas} gas`);
  console.log("");
  console.log("| N tasks | batch tx gas | gas/task batched | gas/task one tx per task (min–max, txs) | ratio |");
  console.log("|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(`| ${r.n} | ${r.batched} | ${r.perBatched.toFixed(1)} | ${r.perSingle.toFixed(0)} ` +
                `(${r.min}–${r.max}, ${r.sampled}) | ${r.ratio.toFixed(1)}x |`);
  }
  const last = rows.find((r) => r.n === 1000);
  if (last) {
    const ok = last.perBatched < 1500 && last.ratio >= 50;
    console.log(`\nN=1000: ${last.perBatched.toFixed(1)} gas/task (target < 1500), ${last.ratio.toFixed(1)}x lower ` +
                `than one tx per task (target >= 50x): ${ok ? "met" : "NOT met"}`);
  }
} finally {
  await chain.stop();
}
