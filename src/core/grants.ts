/**
 * Grants: the master's signed permission for one node to change its contents. Nodes hold
 * the same secret and check every write against it, so a client that can reach a node (even
 * with the cluster token) cannot store or delete chunks the master did not place there.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** What a grant permits. */
export type GrantOperation = "put" | "replicate" | "delete";

/** A signed permission, as carried in messages. */
export interface SignedGrant {
  expiresAtMs: number;
  mac: Buffer;
}

function macOf(secret: Buffer, operation: GrantOperation, subject: string, nodeId: string, expiresAtMs: number): Buffer {
  return createHmac("sha256", secret).update(`dropbox-grant-v1\n${operation}\n${subject}\n${nodeId}\n${expiresAtMs}`).digest();
}

/** The subject of a grant over many chunks: the digest of their ids in order. */
export function listSubject(chunkIds: string[]): string {
  return createHash("sha256").update(chunkIds.join("\n")).digest("hex");
}

/** Signs `operation` on `subject` by `nodeId`, valid for `ttlMs`. */
export function signGrant(secret: Buffer, operation: GrantOperation, subject: string, nodeId: string, nowMs: number, ttlMs: number): SignedGrant {
  const expiresAtMs = nowMs + ttlMs;
  return { expiresAtMs, mac: macOf(secret, operation, subject, nodeId, expiresAtMs) };
}

/** Why a grant does not permit `operation` on `subject` by `nodeId` now, or null when it does. */
export function grantProblem(secret: Buffer, operation: GrantOperation, subject: string, nodeId: string, grant: SignedGrant | null | undefined, nowMs: number): string | null {
  if (!grant || !grant.mac || grant.mac.length !== 32 || !Number.isSafeInteger(grant.expiresAtMs)) return "a grant from the master is required";
  if (grant.expiresAtMs < nowMs) return "the grant has expired";
  const expected = macOf(secret, operation, subject, nodeId, grant.expiresAtMs);
  return timingSafeEqual(expected, Buffer.from(grant.mac)) ? null : "the grant is not valid for this operation";
}
