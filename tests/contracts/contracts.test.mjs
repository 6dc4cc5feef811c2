// Contract behaviour against a real anvil node, driven by ethers (a test
// driver only; teex itself talks to the chain through its C client).
// Run by test_contracts.sh; needs the compiled artifacts (TEEX_CONTRACTS_DIR).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  ethers, startAnvil, accounts, deployAll, domain, signTyped, buildBatch, merkleTree, receiptLeaf,
  dataSharesHash, expectRevert, mined, EMPTY_DATASETS,
} from "../../contracts/js/harness.mjs";

const DELAY = 3600n;
const ROLE_WORKER = 1;
const ROLE_DISPATCHER = 2;
let chain, acct, sm, c, chainId;
let provider1, provider2, users, dispatcher, worker1, worker2, stranger, dataProvider;
const cumulative = new Map();

const id = (s) => ethers.id(s);

async function register(enclave, role, signer = sm) {
  const issuedAt = BigInt((await chain.provider.getBlock("latest")).timestamp);
  const measurement = id("mr_enclave");
  const dom = domain(chainId, await c.enclaves.getAddress());
  const sig = await signTyped(signer, dom, "EnclaveRegistration", { enclave, role, measurement, issuedAt });
  return c.enclaves.register(enclave, role, measurement, issuedAt, sig);
}

async function listingSig(signer, serviceId, providerAddr, version, keys) {
  const dom = domain(chainId, await c.services.getAddress());
  return signTyped(signer, dom, "ServiceListing", { serviceId, provider: providerAddr, version, ...keys });
}

before(async () => {
  chain = await startAnvil();
  acct = accounts(chain.provider);
  chainId = (await chain.provider.getNetwork()).chainId;
  sm = ethers.Wallet.createRandom(); // the SM enclave key: never funded, only signs
  [, provider1, provider2, dispatcher, worker1, worker2, stranger, dataProvider] = acct;
  users = acct.slice(10, 13);
  c = await deployAll(acct[0], sm.address, DELAY);
});

after(async () => {
  if (chain) await chain.stop();
});

test("domain separators follow EIP-712 with name teex, version 1", async () => {
  for (const k of ["enclaves", "services", "settlement"]) {
    const addr = await c[k].getAddress();
    assert.equal(await c[k].domainSeparator(), ethers.TypedDataEncoder.hashDomain(domain(chainId, addr)));
  }
});

const keys = {
  signingKey: ethers.Wallet.createRandom().address,
  encryptionKey: ethers.hexlify(ethers.randomBytes(32)),
  imageHash: id("image v1"),
};
const svc = id("service/echo");

test("list a service: SM signature checked on chain, bound to provider and version", async () => {
  const services = c.services.connect(provider1);
  const bad = await listingSig(ethers.Wallet.createRandom(), svc, provider1.address, 1, keys);
  await expectRevert(services.listService(svc, "bafkreimeta", 100n, 60n, keys.signingKey, keys.encryptionKey,
                                          keys.imageHash, false, bad), "NotSignedByServiceManager");
  const good = await listingSig(sm, svc, provider1.address, 1, keys);
  // The statement names provider1: provider2 cannot use it.
  await expectRevert(c.services.connect(provider2).listService(svc, "bafkreimeta", 100n, 60n, keys.signingKey,
                                                                keys.encryptionKey, keys.imageHash, false, good),
                     "NotSignedByServiceManager");
  await expectRevert(services.listService(svc, "bafkreimeta", 50n, 60n, keys.signingKey, keys.encryptionKey,
                                          keys.imageHash, false, good), "RemunerationAbovePrice");
  // Tampering with a signed field (the image hash) breaks the signature.
  await expectRevert(services.listService(svc, "bafkreimeta", 100n, 60n, keys.signingKey, keys.encryptionKey,
                                          id("other image"), false, good), "NotSignedByServiceManager");
  const tx = services.listService(svc, "bafkreimeta", 100n, 60n, keys.signingKey, keys.encryptionKey,
                                        keys.imageHash, false, good);
  const rc = await mined(tx);
  const ev = rc.logs.map((l) => c.services.interface.parseLog(l)).find((e) => e?.name === "ServiceListed");
  assert.equal(ev.args.serviceId, svc);
  assert.equal(ev.args.provider, provider1.address);
  assert.equal(ev.args.metadataCid, "bafkreimeta");
  const s = await c.services.getService(svc);
  assert.equal(s.provider, provider1.address);
  assert.equal(s.version, 1n);
  assert.equal(s.price, 100n);
  assert.equal(s.remuneration, 60n);
  assert.equal(s.signingKey, keys.signingKey);
  assert.equal(s.imageHash, keys.imageHash);
  await expectRevert(services.listService(svc, "bafkreimeta", 100n, 60n, keys.signingKey, keys.encryptionKey,
                                          keys.imageHash, false, good), "ServiceAlreadyListed");
  assert.equal(await c.services.canInvoke(svc, stranger.address), true);
});

test("new versions, private services, retirement, catalogue events", async () => {
  const services = c.services.connect(provider1);
  const v2 = { ...keys, imageHash: id("image v2") };
  // Replaying the version-1 statement as a new version fails.
  const old = await listingSig(sm, svc, provider1.address, 1, v2);
  await expectRevert(services.publishVersion(svc, "bafkreimeta2", v2.signingKey, v2.encryptionKey, v2.imageHash, old),
                     "NotSignedByServiceManager");
  const sig2 = await listingSig(sm, svc, provider1.address, 2, v2);
  await expectRevert(c.services.connect(provider2).publishVersion(svc, "bafkreimeta2", v2.signingKey,
                                                                  v2.encryptionKey, v2.imageHash, sig2),
                     "NotServiceProvider");
  await mined(services.publishVersion(svc, "bafkreimeta2", v2.signingKey, v2.encryptionKey, v2.imageHash, sig2));
  const s = await c.services.getService(svc);
  assert.equal(s.version, 2n);
  assert.equal(s.imageHash, v2.imageHash);
  assert.equal(s.metadataCid, "bafkreimeta2");

  // A private service of provider2.
  const priv = id("service/private");
  const psig = await listingSig(sm, priv, provider2.address, 1, keys);
  await mined(c.services.connect(provider2).listService(priv, "bafkreipriv", 10n, 10n, keys.signingKey,
                                                         keys.encryptionKey, keys.imageHash, true, psig));
  assert.equal(await c.services.canInvoke(priv, stranger.address), false);
  assert.equal(await c.services.canInvoke(priv, provider2.address), true);
  await mined(c.services.connect(provider2).setAllowed(priv, [stranger.address], true));
  assert.equal(await c.services.canInvoke(priv, stranger.address), true);
  await mined(c.services.connect(provider2).setAllowed(priv, [stranger.address], false));
  assert.equal(await c.services.canInvoke(priv, stranger.address), false);

  await mined(c.services.connect(provider2).retire(priv));
  assert.equal(await c.services.canInvoke(priv, provider2.address), false);
  await expectRevert(c.services.connect(provider2).setPrice(priv, 1n, 1n), "ServiceIsRetired");
  await expectRevert(c.services.getService(id("nothing")), "ServiceNotFound");

  // The catalogue, rebuilt from events alone.
  const listed = await c.services.queryFilter(c.services.filters.ServiceListed(), 0);
  assert.deepEqual(listed.map((e) => e.args.serviceId), [svc, priv]);
  const retired = await c.services.queryFilter(c.services.filters.ServiceRetired(), 0);
  assert.deepEqual(retired.map((e) => e.args.serviceId), [priv]);
  assert.equal(await c.services.serviceCount(), 2n);
});

test("enclave registry: SM-signed registration, revocation for good", async () => {
  await expectRevert(register(dispatcher.address, ROLE_DISPATCHER, ethers.Wallet.createRandom()),
                     "NotSignedByServiceManager");
  await expectRevert(register(dispatcher.address, 7), "InvalidRole");
  await mined(register(dispatcher.address, ROLE_DISPATCHER));
  await mined(register(worker1.address, ROLE_WORKER));
  await mined(register(worker2.address, ROLE_WORKER));
  await expectRevert(register(dispatcher.address, ROLE_DISPATCHER), "EnclaveAlreadyRegistered");
  assert.equal(await c.enclaves.isDispatcher(dispatcher.address), true);
  assert.equal(await c.enclaves.isWorker(worker1.address), true);
  assert.equal(await c.enclaves.isDispatcher(worker1.address), false);
  const events = await c.enclaves.queryFilter(c.enclaves.filters.EnclaveRegistered(), 0);
  assert.equal(events.length, 3);

  // A throwaway enclave: registered, revoked, never again.
  const temp = ethers.Wallet.createRandom().address;
  await mined(register(temp, ROLE_DISPATCHER));
  const dom = domain(chainId, await c.enclaves.getAddress());
  const badRev = await signTyped(stranger, dom, "EnclaveRevocation", { enclave: temp });
  await expectRevert(c.enclaves.revoke(temp, badRev), "NotSignedByServiceManager");
  const rev = await signTyped(sm, dom, "EnclaveRevocation", { enclave: temp });
  await mined(c.enclaves.revoke(temp, rev));
  assert.equal(await c.enclaves.isDispatcher(temp), false);
  await expectRevert(register(temp, ROLE_DISPATCHER), "EnclaveWasRevoked");
});

test("deposit: only to a registered dispatcher", async () => {
  const s = c.settlement.connect(users[0]);
  await expectRevert(s.deposit(stranger.address, { value: 1000n }), "NotRegisteredDispatcher");
  await expectRevert(s.deposit(dispatcher.address, { value: 0n }), "ZeroAmount");
  for (const u of users) await mined(c.settlement.connect(u).deposit(dispatcher.address, { value: 10000n }));
  const [balance, settled] = await c.settlement.escrowOf(users[0].address, dispatcher.address);
  assert.equal(balance, 10000n);
  assert.equal(settled, 0n);
});

let batch1; // { batchId, built }

function tasksFor(n) {
  const t = [];
  for (let i = 0; i < n; i++) {
    t.push({
      user: users[i % users.length], worker: [worker1, worker2][i % 2].address,
      provider: [provider1, provider2][i % 2].address, serviceId: svc, imageHash: keys.imageHash,
      workerAmount: 60n, providerAmount: 40n,
      shares: i % 3 === 0 ? [{ datasetId: id("dataset/a"), payee: dataProvider.address, amount: 5n }] : [],
    });
  }
  return t;
}

async function settlementAddr() { return c.settlement.getAddress(); }

test("settle a batch: debits the cumulative increase, credits payees, records root and CID", async () => {
  const built = await buildBatch({ tasks: tasksFor(7), dispatcher: dispatcher.address, chainId,
                                   settlementAddress: await settlementAddr(), cumulative });
  const batchId = id("batch/1");
  const s = c.settlement.connect(dispatcher);
  const before = await Promise.all(users.map((u) => c.settlement.escrowOf(u.address, dispatcher.address)));
  const rc = await mined(s.settleBatch(batchId, built.root, 7, "bafkreibatch1", built.auths, built.credits));
  const total = built.credits.reduce((a, x) => a + x.amount, 0n);
  assert.equal(total, 7n * 100n + 3n * 5n);
  const ev = rc.logs.map((l) => c.settlement.interface.parseLog(l)).find((e) => e?.name === "BatchSettled");
  assert.equal(ev.args.root, built.root);
  assert.equal(ev.args.cid, "bafkreibatch1");
  assert.equal(ev.args.total, total);
  const b = await c.settlement.getBatch(batchId);
  assert.equal(b.root, built.root);
  assert.equal(b.dispatcher, dispatcher.address);
  assert.equal(b.taskCount, 7n);
  let debited = 0n;
  for (let i = 0; i < users.length; i++) {
    const [bal, settled] = await c.settlement.escrowOf(users[i].address, dispatcher.address);
    assert.equal(settled, cumulative.get(users[i].address));
    debited += before[i][0] - bal;
  }
  assert.equal(debited, total);
  for (const cr of built.credits) assert.equal(await c.settlement.credits(cr.payee), cr.amount);
  batch1 = { batchId, built };
});

test("the same batch cannot be settled twice", async () => {
  const { batchId, built } = batch1;
  await expectRevert(c.settlement.connect(dispatcher).settleBatch(batchId, built.root, 7, "bafkreibatch1",
                                                                  built.auths, built.credits),
                     "BatchAlreadySettled");
});

test("a batch sent by an unregistered key is rejected", async () => {
  const built = await buildBatch({ tasks: tasksFor(2), dispatcher: stranger.address, chainId,
                                   settlementAddress: await settlementAddr(), cumulative: new Map() });
  await expectRevert(c.settlement.connect(stranger).settleBatch(id("batch/x"), built.root, 2, "bafkreix",
                                                                built.auths, built.credits),
                     "NotRegisteredDispatcher");
});

test("a replayed authorisation charges nothing and cannot fund credits", async () => {
  const { built } = batch1;
  const s = c.settlement.connect(dispatcher);
  const before = await c.settlement.escrowOf(users[0].address, dispatcher.address);
  // Same authorisations again, claiming the same credits: debits are zero now.
  const [d, cr] = await expectRevert(s.settleBatch(id("batch/replay"), built.root, 7, "bafkreireplay", built.auths,
                                                   built.credits), "DebitsCreditsMismatch");
  assert.equal(d, 0n);
  assert.ok(cr > 0n);
  // With no credits it settles, and charges nothing.
  await mined(s.settleBatch(id("batch/replay"), built.root, 7, "bafkreireplay", built.auths, []));
  const afterE = await c.settlement.escrowOf(users[0].address, dispatcher.address);
  assert.equal(afterE[0], before[0]);
  assert.equal(afterE[1], before[1]);
});

test("debits above escrow, debits != credits, forged authorisations are rejected", async () => {
  const s = c.settlement.connect(dispatcher);
  const addr = await settlementAddr();
  // 1. More than the escrow: a 20000-wei task against 10000 deposited.
  const big = [{ user: users[1], worker: worker1.address, provider: provider1.address, serviceId: svc,
                 imageHash: keys.imageHash, workerAmount: 15000n, providerAmount: 5000n }];
  const cum = new Map(cumulative);
  const b1 = await buildBatch({ tasks: big, dispatcher: dispatcher.address, chainId, settlementAddress: addr,
                                cumulative: cum });
  const [who] = await expectRevert(s.settleBatch(id("batch/big"), b1.root, 1, "bafkreibig", b1.auths, b1.credits),
                                   "InsufficientEscrow");
  assert.equal(who, users[1].address);
  // 2. Credits one wei above the debits.
  const cum2 = new Map(cumulative);
  const b2 = await buildBatch({ tasks: tasksFor(3), dispatcher: dispatcher.address, chainId, settlementAddress: addr,
                                cumulative: cum2 });
  const inflated = b2.credits.map((x, i) => (i === 0 ? { ...x, amount: x.amount + 1n } : x));
  await expectRevert(s.settleBatch(id("batch/mis"), b2.root, 3, "bafkreimis", b2.auths, inflated),
                     "DebitsCreditsMismatch");
  // 3. An authorisation whose amount was raised after signing.
  const forged = b2.auths.map((a, i) => (i === 0 ? { ...a, cumulative: a.cumulative + 50n } : a));
  await expectRevert(s.settleBatch(id("batch/forged"), b2.root, 3, "bafkreiforged", forged, b2.credits),
                     "BadAuthorizationSignature");
  // 4. An authorisation the user signed for another dispatcher.
  const other = await buildBatch({ tasks: tasksFor(1), dispatcher: stranger.address, chainId, settlementAddress: addr,
                                   cumulative: new Map(cumulative) });
  await expectRevert(s.settleBatch(id("batch/other"), other.root, 1, "bafkreiother", other.auths, other.credits),
                     "BadAuthorizationSignature");
  // 5. An empty CID or root.
  await expectRevert(s.settleBatch(id("batch/nocid"), b2.root, 3, "", b2.auths, b2.credits), "BadBatchCid");
  await expectRevert(s.settleBatch(id("batch/noroot"), ethers.ZeroHash, 3, "bafkrei", b2.auths, b2.credits),
                     "ZeroRoot");
  // Nothing above moved money: the valid batch still settles afterwards.
  for (const [k, v] of cum2) cumulative.set(k, v);
  await mined(s.settleBatch(id("batch/2"), b2.root, 3, "bafkreibatch2", b2.auths, b2.credits));
});

test("receipt inclusion is verified on chain from the recorded root", async () => {
  const { batchId, built } = batch1;
  for (let i = 0; i < built.receipts.length; i++) {
    const { r, shares } = built.receipts[i];
    assert.equal(await c.settlement.receiptLeaf(r, shares), receiptLeaf(r, shares), "leaf layout matches the spec");
    assert.equal(await c.settlement.dataSharesHash(shares), dataSharesHash(shares));
    assert.equal(await c.settlement.verifyReceipt(batchId, r, shares, built.tree.proof(i)), true, `receipt ${i}`);
  }
  const { r, shares } = built.receipts[2];
  const proof = built.tree.proof(2);
  // A tampered receipt, a wrong proof, the wrong batch: all false.
  assert.equal(await c.settlement.verifyReceipt(batchId, { ...r, providerAmount: r.providerAmount + 1n,
                                                             price: r.price + 1n }, shares, proof), false);
  assert.equal(await c.settlement.verifyReceipt(batchId, r, shares, built.tree.proof(3)), false);
  assert.equal(await c.settlement.verifyReceipt(id("batch/none"), r, shares, proof), false);
  // A split that does not add up to the price is refused even with a valid-looking proof.
  assert.equal(await c.settlement.verifyReceipt(batchId, { ...r, workerAmount: r.workerAmount + 1n }, shares, proof),
               false);
  // The authorisation digest the contract computes is the EIP-712 digest.
  const a = built.auths[0];
  const value = { user: a.user, dispatcher: dispatcher.address, taskId: a.taskId, serviceId: a.serviceId,
                  imageHash: a.imageHash, datasetsHash: a.datasetsHash, price: a.price, cumulative: a.cumulative };
  assert.equal(await c.settlement.authorizationDigest(...Object.values(value)),
               ethers.TypedDataEncoder.hash(domain(chainId, await settlementAddr()),
                                            { PaymentAuthorization: (await import("../../contracts/js/harness.mjs")).TYPES.PaymentAuthorization },
                                            value));
  // A single-leaf tree: root = leaf, empty proof. Odd levels carry the last node up.
  assert.equal(merkleTree([built.leaves[0]]).root, built.leaves[0]);
  assert.equal(built.tree.proof(6).length, 2);
  assert.equal(EMPTY_DATASETS, ethers.keccak256(new Uint8Array()));
});

test("withdrawal waits out the delay; payees withdraw credits", async () => {
  const u = users[2];
  const s = c.settlement.connect(u);
  const [bal] = await c.settlement.escrowOf(u.address, dispatcher.address);
  await expectRevert(s.completeWithdrawal(dispatcher.address), "NoWithdrawalPending");
  await mined(s.requestWithdrawal(dispatcher.address, bal + 1000n));
  await expectRevert(s.completeWithdrawal(dispatcher.address), "WithdrawalLocked");
  await chain.provider.send("evm_increaseTime", [Number(DELAY) - 60]);
  await chain.provider.send("evm_mine", []);
  await expectRevert(s.completeWithdrawal(dispatcher.address), "WithdrawalLocked");
  await chain.provider.send("evm_increaseTime", [120]);
  await chain.provider.send("evm_mine", []);
  const ethBefore = await chain.provider.getBalance(u.address);
  const rc = await mined(s.completeWithdrawal(dispatcher.address));
  const ethAfter = await chain.provider.getBalance(u.address);
  // min(requested, escrow): the whole remaining escrow, not more.
  assert.equal(ethAfter - ethBefore + rc.gasUsed * rc.gasPrice, bal);
  const [balAfter] = await c.settlement.escrowOf(u.address, dispatcher.address);
  assert.equal(balAfter, 0n);

  const w = c.settlement.connect(worker1);
  const credit = await c.settlement.credits(worker1.address);
  assert.ok(credit > 0n);
  await expectRevert(w.withdrawCredits(worker1.address, credit + 1n), "InsufficientCredits");
  const to = ethers.Wallet.createRandom().address;
  await mined(w.withdrawCredits(to, credit));
  assert.equal(await chain.provider.getBalance(to), credit);
  assert.equal(await c.settlement.credits(worker1.address), 0n);
});

// ---- DatasetRegistry ----

const dsTerms = (over = {}) => ({
  name: "cohort-2026",
  cid: "bafkreidataset",
  plaintextHash: id("plaintext"),
  size: 1048576n,
  price: 7n,
  expiresAt: 0n,
  maxUses: 3,
  maxOutput: 4096n,
  ...over,
});

async function listDs(signer, t) {
  return c.datasets.connect(signer).listDataset(t.name, t.cid, t.plaintextHash, t.size, t.price, t.expiresAt,
                                                t.maxUses, t.maxOutput);
}

test("list a dataset: id bound to the provider, terms stored, every field checked", async () => {
  const t = dsTerms();
  const dsId = await c.datasets.datasetIdOf(dataProvider.address, t.name);
  assert.equal(dsId, ethers.solidityPackedKeccak256(["string", "address", "string"],
                                                    ["teex/dataset-id/v1", dataProvider.address, t.name]));
  await expectRevert(listDs(dataProvider, dsTerms({ name: "" })), "BadDatasetName");
  await expectRevert(listDs(dataProvider, dsTerms({ name: "x".repeat(65) })), "BadDatasetName");
  await expectRevert(listDs(dataProvider, dsTerms({ cid: "" })), "BadCiphertextCid");
  await expectRevert(listDs(dataProvider, dsTerms({ cid: "b".repeat(129) })), "BadCiphertextCid");
  await expectRevert(listDs(dataProvider, dsTerms({ plaintextHash: ethers.ZeroHash })), "ZeroPlaintextHash");
  const now = BigInt((await chain.provider.getBlock("latest")).timestamp);
  await expectRevert(listDs(dataProvider, dsTerms({ expiresAt: now - 1n })), "ExpiryInPast");
  const rc = await mined(listDs(dataProvider, t));
  const ev = rc.logs.map((l) => c.datasets.interface.parseLog(l)).find((e) => e?.name === "DatasetListed");
  assert.equal(ev.args.datasetId, dsId);
  assert.equal(ev.args.provider, dataProvider.address);
  assert.equal(ev.args.ciphertextCid, t.cid);
  assert.equal(ev.args.maxUses, 3n);
  const d = await c.datasets.getDataset(dsId);
  assert.equal(d.provider, dataProvider.address);
  assert.equal(d.name, t.name);
  assert.equal(d.plaintextHash, t.plaintextHash);
  assert.equal(d.plaintextSize, t.size);
  assert.equal(d.price, 7n);
  assert.equal(d.maxOutputBytes, 4096n);
  assert.equal(d.revoked, false);
  // The same name again, by the same provider: refused. Another provider's
  // dataset of the same name gets another id (no squatting).
  await expectRevert(listDs(dataProvider, t), "DatasetAlreadyListed");
  await mined(listDs(stranger, t));
  assert.notEqual(await c.datasets.datasetIdOf(stranger.address, t.name), dsId);
  assert.equal(await c.datasets.datasetCount(), 2n);
  await expectRevert(c.datasets.getDataset(id("nothing")), "DatasetNotFound");
  assert.equal(await c.datasets.isListed(id("nothing")), false);
  assert.equal(await c.datasets.isListed(dsId), true);
});

test("approvals bind (service, image hash); only the provider changes them; revocation is final", async () => {
  const dsId = await c.datasets.datasetIdOf(dataProvider.address, "cohort-2026");
  const ds = c.datasets.connect(dataProvider);
  const img1 = id("image v1"), img2 = id("image v2");
  assert.equal(await c.datasets.usable(dsId, svc, img1), false);
  await expectRevert(c.datasets.connect(stranger).approve(dsId, [[svc, img1]]), "NotDatasetProvider");
  await expectRevert(ds.approve(id("nothing"), [[svc, img1]]), "DatasetNotFound");
  await expectRevert(ds.approve(dsId, []), "TooManyApprovals");
  await expectRevert(ds.approve(dsId, [[svc, img1], [svc, ethers.ZeroHash]]), "BadApproval");
  const rc = await mined(ds.approve(dsId, [[svc, img1]]));
  const ev = rc.logs.map((l) => c.datasets.interface.parseLog(l)).find((e) => e?.name === "DatasetApproved");
  assert.equal(ev.args.serviceId, svc);
  assert.equal(ev.args.imageHash, img1);
  assert.equal(await c.datasets.isApproved(dsId, svc, img1), true);
  assert.equal(await c.datasets.usable(dsId, svc, img1), true);
  // Another image of the same service, or the same image under another id: not approved.
  assert.equal(await c.datasets.usable(dsId, svc, img2), false);
  assert.equal(await c.datasets.usable(dsId, id("service/other"), img1), false);
  await mined(ds.approve(dsId, [[svc, img2]]));
  assert.equal(await c.datasets.usable(dsId, svc, img2), true);
  await expectRevert(c.datasets.connect(stranger).removeApproval(dsId, [[svc, img2]]), "NotDatasetProvider");
  await mined(ds.removeApproval(dsId, [[svc, img2]]));
  assert.equal(await c.datasets.usable(dsId, svc, img2), false);
  assert.equal(await c.datasets.usable(dsId, svc, img1), true);
  await expectRevert(c.datasets.connect(stranger).setPrice(dsId, 9n), "NotDatasetProvider");
  await mined(ds.setPrice(dsId, 9n));
  assert.equal((await c.datasets.getDataset(dsId)).price, 9n);
  await expectRevert(c.datasets.connect(stranger).revoke(dsId), "NotDatasetProvider");
  await mined(ds.revoke(dsId));
  assert.equal((await c.datasets.getDataset(dsId)).revoked, true);
  assert.equal(await c.datasets.usable(dsId, svc, img1), false);
  await expectRevert(ds.approve(dsId, [[svc, img1]]), "DatasetIsRevoked");
  await expectRevert(ds.setPrice(dsId, 1n), "DatasetIsRevoked");
  await expectRevert(ds.revoke(dsId), "DatasetIsRevoked");
});

test("a dataset stops being usable at its expiry", async () => {
  const now = BigInt((await chain.provider.getBlock("latest")).timestamp);
  const t = dsTerms({ name: "expiring", expiresAt: now + 1000n });
  await mined(listDs(dataProvider, t));
  const dsId = await c.datasets.datasetIdOf(dataProvider.address, t.name);
  await mined(c.datasets.connect(dataProvider).approve(dsId, [[svc, id("image v1")]]));
  assert.equal(await c.datasets.usable(dsId, svc, id("image v1")), true);
  await chain.provider.send("evm_increaseTime", [1000]);
  await chain.provider.send("evm_mine", []);
  assert.equal(await c.datasets.usable(dsId, svc, id("image v1")), false);
});
