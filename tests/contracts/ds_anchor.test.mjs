// DsAnchor (contracts/DsAnchor.sol) against a real anvil node, driven by
// ethers: the latest freshness anchor per TEE-DS group, signed by an enclave
// address the group's owner listed, only ever with a higher index.
// Run by test_ds_anchor.sh; needs the compiled artifacts (TEEX_CONTRACTS_DIR).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ethers, startAnvil, accounts, artifact, domain, expectRevert, mined } from "../../contracts/js/harness.mjs";

// The typed data, written from the contract's documentation (not its ABI).
const ANCHOR_TYPE = {
  DsAnchor: [
    { name: "groupId", type: "bytes32" }, { name: "index", type: "uint64" }, { name: "term", type: "uint64" },
    { name: "appliedChain", type: "bytes32" }, { name: "stateDigest", type: "bytes32" },
    { name: "time", type: "uint64" }, { name: "commitmentHash", type: "bytes32" }, { name: "cid", type: "string" },
  ],
};

let chain, acct, c, dom, owner, submitter, stranger;
const replicas = [1, 2, 3].map(() => ethers.Wallet.createRandom()); // enclave keys: never funded
const group = ethers.id("group/a");

before(async () => {
  chain = await startAnvil();
  acct = accounts(chain.provider);
  [owner, submitter, stranger] = acct;
  const a = artifact("DsAnchor");
  c = await new ethers.ContractFactory(a.abi, a.bytecode, owner).deploy();
  await c.waitForDeployment();
  dom = domain((await chain.provider.getNetwork()).chainId, await c.getAddress());
});

after(async () => {
  if (chain) await chain.stop();
});

async function commitment(over = {}) {
  const now = BigInt((await chain.provider.getBlock("latest")).timestamp) * 1000n;
  return {
    groupId: group, index: 10n, term: 2n, appliedChain: ethers.id("chain@10"), stateDigest: ethers.id("digest@10"),
    time: now, commitmentHash: ethers.id("document"), cid: "bafkreianchor", ...over,
  };
}

async function sign(wallet, cm) {
  const s = ethers.Signature.from(await wallet.signTypedData(dom, ANCHOR_TYPE, cm));
  return { v: s.v, r: s.r, s: s.s };
}

test("a group is created once, by its owner, who alone changes its anchorers", async () => {
  await expectRevert(c.createGroup(ethers.ZeroHash, []), "ZeroGroupId");
  await expectRevert(c.createGroup(group, [replicas[0].address, ethers.ZeroAddress]), "ZeroAddress");
  const nine = Array.from({ length: 9 }, () => ethers.Wallet.createRandom().address);
  await expectRevert(c.createGroup(group, nine), "TooManyAnchorers");
  await mined(c.createGroup(group, replicas.slice(0, 2).map((w) => w.address)));
  assert.equal(await c.ownerOf(group), owner.address);
  await expectRevert(c.connect(stranger).createGroup(group, [stranger.address]), "GroupExists");
  await expectRevert(c.connect(stranger).setAnchorer(group, stranger.address, true), "NotGroupOwner");
  await expectRevert(c.setAnchorer(ethers.id("nothing"), stranger.address, true), "NoSuchGroup");
  await mined(c.setAnchorer(group, replicas[2].address, true));
  for (const w of replicas) assert.equal(await c.isAnchorer(group, w.address), true);
  assert.equal(await c.isAnchorer(group, stranger.address), false);
  assert.equal((await c.latest(group)).index, 0n);
});

test("an anchor signed by a listed enclave is recorded, whoever submits it", async () => {
  const cm = await commitment();
  const rc = await mined(c.connect(submitter).anchor(cm, await sign(replicas[1], cm)));
  const ev = rc.logs.map((l) => c.interface.parseLog(l)).find((e) => e?.name === "Anchored");
  assert.equal(ev.args.groupId, group);
  assert.equal(ev.args.index, 10n);
  assert.equal(ev.args.signer, replicas[1].address);
  assert.equal(ev.args.cid, cm.cid);
  const a = await c.latest(group);
  assert.equal(a.index, 10n);
  assert.equal(a.term, 2n);
  assert.equal(a.time, cm.time);
  assert.equal(a.appliedChain, cm.appliedChain);
  assert.equal(a.stateDigest, cm.stateDigest);
  assert.equal(a.commitmentHash, cm.commitmentHash);
  assert.equal(a.cid, cm.cid);
  assert.equal(a.signer, replicas[1].address);
});

test("only a higher index, a term that does not go back, and a valid listed signature", async () => {
  // Same or lower index: the floor never moves down (a restored group cannot re-anchor an old head).
  for (const index of [10n, 9n]) {
    const cm = await commitment({ index, appliedChain: ethers.id("other") });
    await expectRevert(c.anchor(cm, await sign(replicas[0], cm)), "IndexNotIncreasing");
  }
  let cm = await commitment({ index: 11n, term: 1n });
  await expectRevert(c.anchor(cm, await sign(replicas[0], cm)), "TermDecreasing");
  // Signed by someone the owner did not list, or by the owner's own account.
  cm = await commitment({ index: 11n });
  await expectRevert(c.anchor(cm, await sign(ethers.Wallet.createRandom(), cm)), "NotAnAnchorer");
  // A signed field changed after signing: the recovered address is another one.
  const sig = await sign(replicas[0], cm);
  for (const k of ["index", "term", "time"]) {
    await expectRevert(c.anchor({ ...cm, [k]: cm[k] + 1n }, sig), "NotAnAnchorer");
  }
  for (const k of ["appliedChain", "stateDigest", "commitmentHash"]) {
    await expectRevert(c.anchor({ ...cm, [k]: ethers.id("tampered") }, sig), "NotAnAnchorer");
  }
  await expectRevert(c.anchor({ ...cm, cid: "bafkreiother" }, sig), "NotAnAnchorer");
  // A signature for another group does not transfer.
  await expectRevert(c.anchor({ ...cm, groupId: ethers.id("group/b") }, sig), "NoSuchGroup");
  // Malleable twin (high s) refused.
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const twin = { v: sig.v === 27 ? 28 : 27, r: sig.r, s: ethers.toBeHex(n - BigInt(sig.s), 32) };
  await expectRevert(c.anchor(cm, twin), "NotAnAnchorer");
  // Field checks.
  await expectRevert(c.anchor({ ...cm, cid: "" }, sig), "BadCid");
  await expectRevert(c.anchor({ ...cm, cid: "b".repeat(129) }, sig), "BadCid");
  await expectRevert(c.anchor({ ...cm, appliedChain: ethers.ZeroHash }, sig), "ZeroHash");
  const future = await commitment({ index: 11n, time: cm.time + 2n * 3600n * 1000n });
  await expectRevert(c.anchor(future, await sign(replicas[0], future)), "CommitmentFromFuture");
  // The untouched statement is accepted.
  await mined(c.anchor(cm, sig));
  assert.equal((await c.latest(group)).index, 11n);
  assert.equal((await c.latest(group)).signer, replicas[0].address);
});

test("a removed anchorer can no longer sign; groups are independent", async () => {
  await mined(c.setAnchorer(group, replicas[2].address, false));
  assert.equal(await c.isAnchorer(group, replicas[2].address), false);
  let cm = await commitment({ index: 12n });
  await expectRevert(c.anchor(cm, await sign(replicas[2], cm)), "NotAnAnchorer");
  const other = ethers.id("group/b");
  await mined(c.connect(stranger).createGroup(other, [replicas[2].address]));
  cm = await commitment({ groupId: other, index: 1n, term: 1n });
  await mined(c.anchor(cm, await sign(replicas[2], cm)));
  assert.equal((await c.latest(other)).index, 1n);
  assert.equal((await c.latest(group)).index, 11n);
});
