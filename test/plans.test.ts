/** Many-file plans and their scheduler: checked in full up front, handed out lazily, reported in order. */
import { describe, expect, test } from "bun:test";
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { planUpload } from "../src/client/plans";
import { collectOutcomes, runTransfers, type UploadItem } from "../src/client/transfers";
import { waitFor, withTempDir } from "./harness";

/** Every item of a plan, in order, whether it hands out an array or walks again. */
async function itemsOf<T>(plan: { items(): Iterable<T> | AsyncIterable<T> }): Promise<T[]> {
  const out: T[] = [];
  for await (const item of plan.items()) out.push(item);
  return out;
}

/** A small tree whose names sort differently as paths than as plain strings ('-' < '/' < '0'). */
async function makeTree(root: string) {
  for (const dir of ["a", "a/b", "a-c", "z"]) await mkdir(join(root, dir), { recursive: true });
  const files = ["a/b/x", "a/y", "a-c/q", "a.txt", "a0", "z/last", "m"];
  for (const [i, file] of files.entries()) await writeFile(join(root, file), "x".repeat(i + 1));
  await symlink("m", join(root, "link"));
  return files;
}

describe("upload plans", () => {
  test("a tree is walked in code-unit order of its relative paths; a large plan walks it again, lazily, to the same items", async () => {
    await withTempDir(async (dir) => {
      const files = await makeTree(join(dir, "t"));
      const kept = await planUpload([join(dir, "t")], { recursive: true, prefix: "p/" });
      const names = (await itemsOf(kept)).map((i) => i.name);
      expect(names).toEqual(files.map((f) => `p/${f}`).sort());
      expect(kept.files).toBe(files.length);
      expect(kept.bytes).toBe((files.length * (files.length + 1)) / 2);
      expect(kept.skipped).toEqual([{ path: join(dir, "t", "link"), reason: "symbolic link (not followed)" }]);
      // Kept from the checking pass: an array, the same each time.
      expect(Array.isArray(kept.items())).toBe(true);

      const walked = await planUpload([join(dir, "t")], { recursive: true, prefix: "p/", keepFiles: 3 });
      expect(Array.isArray(walked.items())).toBe(false);
      expect(await itemsOf(walked)).toEqual(await itemsOf(kept));
      expect(walked.skipped).toHaveLength(1);
      // Walked afresh: a file removed since the plan is simply not there.
      await rm(join(dir, "t", "a0"));
      expect((await itemsOf(walked)).map((i) => i.name)).toEqual(names.filter((n) => n !== "p/a0"));
    });
  });

  test("two trees and plain files: the same name twice is refused before anything is sent, wherever it lies", async () => {
    await withTempDir(async (dir) => {
      await makeTree(join(dir, "one"));
      await mkdir(join(dir, "two", "a", "b"), { recursive: true });
      await writeFile(join(dir, "two", "zz"), "");
      await writeFile(join(dir, "two", "a", "b", "x"), "clash");
      await expect(planUpload([join(dir, "one"), join(dir, "two")], { recursive: true, prefix: "" })).rejects.toThrow(`${join(dir, "one", "a", "b", "x")} and ${join(dir, "two", "a", "b", "x")} would both be stored as "a/b/x"`);
      await rm(join(dir, "two", "a"), { recursive: true });
      // A plain file named like a file deep in a tree.
      await writeFile(join(dir, "last"), "");
      await expect(planUpload([join(dir, "last"), join(dir, "one", "z")], { recursive: true, prefix: "" })).rejects.toThrow('would both be stored as "last"');
      // No clash: both trees, in the order given, each in its own order.
      const plan = await planUpload([join(dir, "two"), join(dir, "one", "z")], { recursive: true, prefix: "" });
      expect((await itemsOf(plan)).map((i: UploadItem) => i.path)).toEqual([join(dir, "two", "zz"), join(dir, "one", "z", "last")]);
    });
  });
});

describe("running transfers", () => {
  test("outcomes come in plan order, and no file starts more than the window past the oldest unreported one", async () => {
    const releases = new Map<number, () => void>();
    let started = 0;
    let maxAhead = 0;
    let reported = 0;
    const order: number[] = [];
    async function* items() {
      for (let i = 0; i < 40; i++) yield { size: 1, i };
    }
    const run = runTransfers(
      items(),
      16,
      async (item) => {
        started++;
        maxAhead = Math.max(maxAhead, item.i - reported);
        // Item 0 is held; later items end out of order once it is released.
        if (item.i === 0) await new Promise<void>((resolve) => releases.set(0, resolve));
        else if (item.i > 4) await new Promise((resolve) => setTimeout(resolve, (item.i * 7) % 3));
        return item.i * 2;
      },
      (outcome) => {
        order.push(outcome.result!);
        reported++;
      },
      {},
      5,
    );
    // With item 0 held, the window lets items 1-4 start and finish (at once: no timers), and nothing past them.
    await waitFor("items 0-4 to start", async () => started >= 5);
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toBe(5);
    expect(order).toEqual([]);
    releases.get(0)!();
    await run;
    expect(order).toEqual(Array.from({ length: 40 }, (_, i) => i * 2));
    expect(maxAhead).toBeLessThan(5);
  });

  test("a failing source ends the run after the files in flight, which are still reported", async () => {
    async function* items() {
      yield { size: 1, name: "first" };
      yield { size: 1, name: "second" };
      throw new Error("directory vanished");
    }
    const names: string[] = [];
    await expect(
      collectOutcomes<{ size: number; name: string }, string>((onOutcome) =>
        runTransfers(items(), 4, async (item) => item.name, (outcome) => {
          names.push(outcome.result!);
          onOutcome(outcome);
        }),
      ),
    ).rejects.toThrow("directory vanished");
    expect(names).toEqual(["first", "second"]);
  });
});
