// Independent EIP-712 hashing of the settlement v1 statements with ethers'
// TypedDataEncoder (a test oracle only). Reads [{kind, domain, value, sig}]
// on stdin; prints per item: digest, then the address recovered from sig.
import { createRequire } from "node:module";
import path from "node:path";
import fs from "node:fs";

const root = path.resolve(process.env.TEEX_SOURCE_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), "..", ".."));
const require = createRequire(path.join(root, "tools", "package.json"));
const { ethers } = require("ethers");

const types = {
  PaymentAuthorization: [
    { name: "user", type: "address" }, { name: "dispatcher", type: "address" },
    { name: "taskId", type: "bytes32" }, { name: "serviceId", type: "bytes32" },
    { name: "imageHash", type: "bytes32" }, { name: "datasetsHash", type: "bytes32" },
    { name: "price", type: "uint256" }, { name: "cumulative", type: "uint256" }],
  Receipt: [
    { name: "taskId", type: "bytes32" }, { name: "serviceId", type: "bytes32" },
    { name: "imageHash", type: "bytes32" }, { name: "user", type: "address" },
    { name: "dispatcher", type: "address" }, { name: "worker", type: "address" },
    { name: "provider", type: "address" }, { name: "inputCommitment", type: "bytes32" },
    { name: "outputCommitment", type: "bytes32" }, { name: "price", type: "uint256" },
    { name: "workerAmount", type: "uint256" }, { name: "providerAmount", type: "uint256" },
    { name: "dataSharesHash", type: "bytes32" }],
  ServiceListing: [
    { name: "serviceId", type: "bytes32" }, { name: "provider", type: "address" },
    { name: "version", type: "uint32" }, { name: "signingKey", type: "address" },
    { name: "encryptionKey", type: "bytes32" }, { name: "imageHash", type: "bytes32" }],
  EnclaveRegistration: [
    { name: "enclave", type: "address" }, { name: "role", type: "uint8" },
    { name: "measurement", type: "bytes32" }, { name: "issuedAt", type: "uint64" }],
  EnclaveRevocation: [{ name: "enclave", type: "address" }],
};

const items = JSON.parse(fs.readFileSync(0, "utf8"));
for (const it of items) {
  const domain = { name: "teex", version: "1", chainId: it.domain.chainId, verifyingContract: it.domain.verifyingContract };
  const t = { [it.kind]: types[it.kind] };
  console.log(ethers.TypedDataEncoder.hash(domain, t, it.value));
  console.log(ethers.verifyTypedData(domain, t, it.value, it.sig));
}
