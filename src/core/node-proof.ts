/**
 * Node proofs: with a node secret, a node shows the master that it holds the secret and
 * speaks for its node id each time it registers (the proof binds the address it registers)
 * and reports. So a holder of the cluster token alone cannot take a node's id over: point its
 * chunks at another address, keep a dead node looking alive, or report its chunks lost.
 * (The proof does not expire: on a network others can watch, run TLS.)
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** What the proof is for. */
export type NodeProofOperation = "register" | "heartbeat";

/** The proof for `operation` by `nodeId` (at `address`, HOST:PORT, when registering). */
export function nodeProof(secret: Buffer, operation: NodeProofOperation, nodeId: string, address = ""): Buffer {
  return createHmac("sha256", secret).update(`dropbox-node-v1\n${operation}\n${nodeId}\n${address}`).digest();
}

/** Why `proof` does not prove `operation` by `nodeId` (at `address`), or null when it does. */
export function nodeProofProblem(secret: Buffer, operation: NodeProofOperation, nodeId: string, address: string, proof: Uint8Array | null | undefined): string | null {
  if (!proof || proof.length === 0) return "this master requires nodes to prove the node secret; start the node with the same --node-secret-file";
  const expected = nodeProof(secret, operation, nodeId, address);
  if (proof.length !== expected.length || !timingSafeEqual(expected, Buffer.from(proof))) return `node ${nodeId} did not prove the node secret (a different --node-secret-file?)`;
  return null;
}
