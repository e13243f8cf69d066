/**
 * The supervisor: starts the master and the nodes, decides when the cluster is ready,
 * restarts children that die (with backoff), and stops them in order: nodes, then master.
 * Everything it knows goes to the state file, so any shell can see it.
 */
import { mkdir } from "node:fs/promises";
import { failedPrecondition, invalidArgument } from "../core/errors";
import type { Log } from "../core/log";
import { RestartPolicy } from "./backoff";
import { READY_POLL_INTERVAL_MS } from "./limits";
import { lastLines } from "./log-tail";
import { logPathFor, logsDir, masterAddressOf, planChildren, type ChildSpec, type ClusterConfig } from "./plan";
import { spawnSelf, terminate } from "./processes";
import { childHealthy, ClusterProbe } from "./readiness";
import { removeState, STATE_FORMAT, writeState, type ChildRecord, type ClusterStateDoc } from "./state";

/** How often the supervisor checks restarted children for health once the cluster is ready. */
const HEALTH_WATCH_INTERVAL_MS = 100;

/** One child at run time. */
interface Child {
  spec: ChildSpec;
  record: ChildRecord;
  policy: RestartPolicy;
  restartTimer: ReturnType<typeof setTimeout> | null;
  /** Set while the supervisor itself stops this process, so its exit is not a crash. */
  stoppingOnPurpose: boolean;
  exited: Promise<string> | null;
}

/** Why a start failed, naming the process. */
export class StartFailure extends Error {
  constructor(
    readonly child: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Supervises one cluster from this process. */
export class Supervisor {
  readonly doc: ClusterStateDoc;
  private readonly children: Child[];
  private readonly probe: ClusterProbe;
  private stopping = false;
  private startFailure: StartFailure | null = null;
  private healthTimer: ReturnType<typeof setInterval> | null = null;
  private stopped: Promise<void> | null = null;

  constructor(
    readonly config: ClusterConfig,
    private readonly log: Log,
    /** Called after every state change, with the document just written. */
    private readonly onChange: (doc: ClusterStateDoc) => void = () => {},
  ) {
    const specs = planChildren(config);
    this.children = specs.map((spec) => ({
      spec,
      record: { name: spec.name, role: spec.role, pid: 0, port: spec.port, dataDir: spec.dataDir, log: spec.logPath, state: "stopped", restarts: 0, startedAtMs: 0 },
      policy: new RestartPolicy(),
      restartTimer: null,
      stoppingOnPurpose: false,
      exited: null,
    }));
    this.doc = {
      format: STATE_FORMAT,
      supervisorPid: process.pid,
      supervisorLog: logPathFor(config.dataDir, "supervisor"),
      startedAtMs: Date.now(),
      phase: "starting",
      masterAddress: masterAddressOf(config),
      basePort: config.basePort,
      ports: specs.map((s) => s.port),
      replication: config.replication,
      dataDir: config.dataDir,
      children: this.children.map((c) => c.record),
    };
    this.probe = new ClusterProbe(this.doc.masterAddress);
  }

  private saving: Promise<void> = Promise.resolve();

  /** Writes the state file; writes are queued so that two never race on the temp file. */
  private save(): Promise<void> {
    this.saving = this.saving
      .then(() => writeState(this.doc))
      .then(() => this.onChange(this.doc))
      .catch((err) => this.log(`cannot write the state file: ${err}`));
    return this.saving;
  }

  private get master(): Child {
    return this.children[0]!;
  }

  private get nodes(): Child[] {
    return this.children.slice(1);
  }

  /** Starts every child and resolves once the cluster is ready; on failure stops them all and throws StartFailure. */
  async start(): Promise<void> {
    await mkdir(logsDir(this.config.dataDir), { recursive: true, mode: 0o700 });
    await this.save();
    this.log(`starting master on ${this.doc.masterAddress} and ${this.nodes.length} nodes (replication ${this.config.replication})`);
    // Nodes start once the master serves: started alongside it they would wait out a register retry, which costs more.
    this.spawn(this.master);
    await this.save();
    try {
      await this.waitReady(Date.now() + this.config.readyTimeoutMs);
    } catch (err) {
      // Interrupted by stop(): it cleans up and removes the state.
      if (this.stopping) throw new StartFailure(undefined, "interrupted");
      const failure = err instanceof StartFailure ? err : new StartFailure(undefined, String(err));
      this.doc.phase = "failed";
      this.doc.error = failure.message;
      this.doc.failedChild = failure.child;
      this.log(`start failed: ${failure.message}`);
      await this.stopChildren();
      await this.save();
      this.probe.close();
      throw failure;
    }
    this.doc.phase = "ready";
    await this.save();
    this.log("cluster ready");
    this.healthTimer = setInterval(() => void this.watchRestarted(), HEALTH_WATCH_INTERVAL_MS);
  }

  private async waitReady(deadlineMs: number): Promise<void> {
    for (;;) {
      if (this.startFailure) throw this.startFailure;
      if (this.stopping) throw new StartFailure(undefined, "interrupted");
      const health = await this.probe.probe();
      let changed = false;
      for (const child of this.children) {
        if (child.record.state === "starting" && childHealthy(child.spec.role, child.spec.name, child.record.startedAtMs, health)) {
          child.record.state = "running";
          changed = true;
        }
      }
      if (changed) await this.save();
      if (this.master.record.state === "running" && this.nodes.some((c) => c.record.state === "stopped")) {
        for (const node of this.nodes) if (node.record.state === "stopped") this.spawn(node);
        await this.save();
      }
      if (this.children.every((c) => c.record.state === "running")) return;
      if (Date.now() > deadlineMs) {
        const late = this.children.filter((c) => c.record.state !== "running");
        const first = late[0]!;
        const what = health.masterServing ? `${late.map((c) => c.spec.name).join(", ")} did not register with the master` : `the master did not serve on ${this.doc.masterAddress}`;
        throw new StartFailure(health.masterServing ? first.spec.name : "master", `${what} within ${this.config.readyTimeoutMs} ms`);
      }
      await Bun.sleep(READY_POLL_INTERVAL_MS);
    }
  }

  /** Marks restarted children running once they are healthy again. */
  private async watchRestarted() {
    if (this.stopping || !this.children.some((c) => c.record.state === "starting")) return;
    const health = await this.probe.probe();
    let changed = false;
    for (const child of this.children) {
      if (child.record.state === "starting" && child.record.pid > 0 && childHealthy(child.spec.role, child.spec.name, child.record.startedAtMs, health)) {
        child.record.state = "running";
        this.log(`${child.spec.name} healthy again (pid ${child.record.pid})`);
        changed = true;
      }
    }
    if (changed && !this.stopping) await this.save();
  }

  private spawn(child: Child) {
    // Every start, restart and backoff retry comes through here: once a stop has begun, nothing
    // new may start (a start loop resuming after an await would otherwise revive a stopped node
    // that the stop no longer waits for).
    if (this.stopping) return;
    const spawned = spawnSelf(child.spec.args, child.spec.logPath, { supervised: true });
    child.record.pid = spawned.pid;
    child.record.state = "starting";
    child.record.startedAtMs = Date.now();
    child.stoppingOnPurpose = false;
    child.exited = spawned.exited;
    this.log(`${child.spec.name} started: pid ${spawned.pid}, port ${child.spec.port}`);
    void spawned.exited.then((how) => this.onExit(child, spawned.pid, how));
  }

  private async onExit(child: Child, pid: number, how: string) {
    if (child.record.pid !== pid) return;
    child.record.pid = 0;
    child.record.lastExit = how;
    if (this.stopping || child.stoppingOnPurpose) {
      child.record.state = "stopped";
      return;
    }
    const upForMs = Date.now() - child.record.startedAtMs;
    child.record.startedAtMs = 0;
    this.log(`${child.spec.name} (pid ${pid}) died: ${how}`);
    if (this.doc.phase === "starting") {
      child.record.state = "stopped";
      this.startFailure ??= new StartFailure(child.spec.name, `${child.spec.name} exited during start (${how})${await this.errorLine(child)}`);
      return;
    }
    const delayMs = child.policy.afterCrash(upForMs, Date.now());
    if (delayMs === "failed") {
      child.record.state = "failed";
      this.log(`${child.spec.name} crashed too often; leaving it down`);
    } else {
      child.record.state = "backoff";
      child.record.restarts++;
      this.log(`restarting ${child.spec.name} in ${delayMs} ms`);
      child.restartTimer = setTimeout(() => {
        child.restartTimer = null;
        if (this.stopping) return;
        this.spawn(child);
        void this.save();
      }, delayMs);
    }
    await this.save();
  }

  /** The child's own last error line, e.g. ": error: port 9001 on 127.0.0.1 is already in use". */
  private async errorLine(child: Child): Promise<string> {
    const lines = await lastLines(child.spec.logPath, 20);
    const error = lines.reverse().find((l) => l.startsWith("error:"));
    return error ? `: ${error}` : "";
  }

  /** Restarts the named children on purpose (all when empty): nodes stop before the master and start after it. */
  async restart(names: string[]): Promise<void> {
    if (this.stopping) throw failedPrecondition("the cluster is stopping");
    const picked = names.length === 0 ? this.children : this.children.filter((c) => names.includes(c.spec.name));
    const unknown = names.filter((n) => !this.children.some((c) => c.spec.name === n));
    if (unknown.length > 0) throw invalidArgument(`no process named ${unknown.join(", ")}`);
    const stopOrder = [...picked].reverse();
    for (const child of stopOrder) await this.stopChild(child);
    for (const child of picked) {
      child.policy = new RestartPolicy();
      this.spawn(child);
    }
    this.log(`restarted ${picked.map((c) => c.spec.name).join(", ")}`);
    await this.save();
  }

  private async stopChild(child: Child) {
    if (child.restartTimer) clearTimeout(child.restartTimer);
    child.restartTimer = null;
    const pid = child.record.pid;
    if (pid > 0) {
      child.stoppingOnPurpose = true;
      await terminate([pid]);
      await child.exited;
    }
    child.record.pid = 0;
    child.record.state = "stopped";
  }

  /** Nodes first (so none writes to a master that is gone), then the master; resolves when every child is gone. */
  private async stopChildren() {
    this.stopping = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    await Promise.all(this.nodes.map((c) => this.stopChild(c)));
    await this.stopChild(this.master);
  }

  /** Stops the cluster cleanly and removes the state file; safe to call more than once. */
  stop(): Promise<void> {
    // Synchronously, before any await: from here on no child may be (re)started.
    this.stopping = true;
    this.stopped ??= (async () => {
      this.log("stopping: nodes, then the master");
      this.doc.phase = "stopping";
      await this.save();
      await this.stopChildren();
      this.probe.close();
      await removeState(this.config.dataDir);
      this.log("stopped");
    })();
    return this.stopped;
  }

  /** True when some child was given up on. */
  get degraded(): boolean {
    return this.children.some((c) => c.record.state === "failed");
  }
}
