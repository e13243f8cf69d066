/** The master's view of its nodes: addresses (persisted) and liveness (from heartbeats, in memory). */
import type { NodeUsage, StorageNode } from "../rpc/messages";
import type { Metadata } from "./metadata";

/** One node as the master sees it now. */
export interface NodeState extends NodeUsage {
  id: string;
  host: string;
  port: number;
  registeredAtMs: number;
  /** 0 until the node has reported since this master started. */
  lastHeartbeatMs: number;
}

/** Tracks registered nodes; liveness is decided by heartbeat age. */
export class NodeRegistry {
  private readonly nodes = new Map<string, NodeState>();

  constructor(
    private readonly metadata: Metadata,
    private readonly nodeTimeoutMs: number,
  ) {
    for (const row of metadata.nodes()) {
      this.nodes.set(row.id, { id: row.id, host: row.host, port: row.port, registeredAtMs: row.registered_at_ms, lastHeartbeatMs: 0, capacityBytes: 0, freeBytes: 0, usedBytes: 0, chunkCount: 0 });
    }
  }

  /** Records a (re-)registration; persists the address. */
  register(id: string, host: string, port: number, usage: NodeUsage, nowMs: number) {
    this.metadata.upsertNode(id, host, port, nowMs);
    const previous = this.nodes.get(id);
    this.nodes.set(id, { id, host, port, registeredAtMs: previous?.registeredAtMs ?? nowMs, lastHeartbeatMs: nowMs, ...usage });
  }

  /** Records a heartbeat; false when the node is unknown and must register. */
  heartbeat(id: string, usage: NodeUsage, nowMs: number): boolean {
    const node = this.nodes.get(id);
    if (!node) return false;
    Object.assign(node, usage, { lastHeartbeatMs: nowMs });
    return true;
  }

  isAlive(node: NodeState, nowMs: number): boolean {
    return node.lastHeartbeatMs > 0 && nowMs - node.lastHeartbeatMs <= this.nodeTimeoutMs;
  }

  get(id: string): NodeState | undefined {
    return this.nodes.get(id);
  }

  all(): NodeState[] {
    return [...this.nodes.values()];
  }

  live(nowMs: number): NodeState[] {
    return this.all().filter((n) => this.isAlive(n, nowMs));
  }

  static address(node: NodeState): StorageNode {
    return { host: node.host, port: node.port, nodeId: node.id };
  }
}
