/**
 * Start-up progress that fits where it is shown: a listr2 task list on a terminal, plain
 * lines when piped or under CI (no control codes), nothing with --quiet.
 */
import { Listr, type ListrTaskWrapper } from "listr2";
import type { ChildSpec } from "./plan";
import type { ChildRecord, ClusterStateDoc } from "./state";
import { writeOut } from "../core/stdio";

/** tty: live task list; plain: one line per event; quiet: nothing. */
export type ProgressMode = "tty" | "plain" | "quiet";

/** Picks the mode: a live task list only on a real, sized terminal outside CI. */
export function progressMode(quiet: boolean | undefined): ProgressMode {
  if (quiet) return "quiet";
  const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false" && process.env.CI !== "0";
  // listr2 on a terminal reporting 0 columns prints garbage.
  if (!process.stdout.isTTY || ci || !process.stdout.columns) return "plain";
  return "tty";
}

/** Shows the children coming up; fed every state document the supervisor writes. */
export interface StartProgress {
  update(doc: ClusterStateDoc): void;
  /** Ends the display; children not yet healthy are shown as not started. */
  finish(): Promise<void>;
}

/** A progress display for the planned children. */
export function startProgress(mode: ProgressMode, specs: ChildSpec[]): StartProgress {
  if (mode === "tty") return new TaskListProgress(specs);
  if (mode === "plain") return new PlainProgress();
  return { update() {}, finish: async () => {} };
}

function describe(child: ChildRecord): string {
  return `${child.name.padEnd(8)} pid ${String(child.pid || "-").padEnd(7)} port ${child.port}`;
}

/** One line per event, for logs and pipes. */
class PlainProgress implements StartProgress {
  private readonly seen = new Map<string, string>();

  update(doc: ClusterStateDoc) {
    for (const child of doc.children) {
      const key = `${child.pid}:${child.state}`;
      if (this.seen.get(child.name) === key || child.pid === 0) continue;
      this.seen.set(child.name, key);
      if (child.state === "starting") writeOut(`${describe(child)}  starting\n`);
      else if (child.state === "running") writeOut(`${describe(child)}  healthy\n`);
    }
  }

  async finish() {}
}

interface Pending {
  task?: ListrTaskWrapper<unknown, any, any>;
  settle?: (error?: Error) => void;
  settled: boolean;
  error?: Error;
  title: string;
}

/** A listr2 task per child, ticking as each becomes healthy. */
class TaskListProgress implements StartProgress {
  private readonly pending = new Map<string, Pending>();
  private readonly running: Promise<unknown>;

  constructor(specs: ChildSpec[]) {
    for (const spec of specs) this.pending.set(spec.name, { settled: false, title: `${spec.name.padEnd(8)} pid -       port ${spec.port}` });
    const list = new Listr(
      specs.map((spec) => ({
        title: this.pending.get(spec.name)!.title,
        task: (_ctx: unknown, task: ListrTaskWrapper<unknown, any, any>) =>
          new Promise<void>((resolve, reject) => {
            const p = this.pending.get(spec.name)!;
            p.task = task;
            task.title = p.title;
            p.settle = (error) => (error ? reject(error) : resolve());
            if (p.settled) p.settle(p.error);
          }),
      })),
      { concurrent: true, exitOnError: false, renderer: "default", rendererOptions: { formatOutput: "truncate" } },
    );
    this.running = list.run().catch(() => undefined);
  }

  update(doc: ClusterStateDoc) {
    for (const child of doc.children) {
      const p = this.pending.get(child.name);
      if (!p || p.settled) continue;
      p.title = describe(child);
      if (p.task) p.task.title = p.title;
      if (child.state === "running") this.settle(p);
      else if (doc.phase === "failed") this.settle(p, new Error(doc.failedChild === child.name ? `${p.title}  failed` : `${p.title}  stopped`));
    }
  }

  private settle(p: Pending, error?: Error) {
    p.settled = true;
    p.error = error;
    p.settle?.(error);
  }

  async finish() {
    for (const p of this.pending.values()) if (!p.settled) this.settle(p, new Error(`${p.title}  not started`));
    await this.running;
  }
}
