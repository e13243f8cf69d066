/** Small files made durable as a group land whole under their names, alone or with others, and a failure leaves nothing behind. */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GroupCommit } from "../src/core/group-commit";
import { syncFilesystem, syncfsTrusted } from "../src/core/syncfs";
import { waitFor } from "./poll";
import { withTempDir, withTempDirUnder } from "./harness";


/** Every name under `dir`, nested ones as relative paths. */
async function namesUnder(dir: string): Promise<string[]> {
  return ((await readdir(dir, { recursive: true })) as string[]).sort();
}

/** Writes `files` through one group, flushed once all of them wait, as a many-file download does. */
async function writeGroup(group: GroupCommit, files: Map<string, Buffer>): Promise<PromiseSettledResult<void>[]> {
  return Promise.allSettled([...files].map(([path, data]) => group.write(path, data, 0o644)));
}

describe("group commit", () => {
  test("syncfs is available on this Linux, syncs the temp directory's filesystem, and is trusted on ext4 and tmpfs only among these", async () => {
    const handle = await open(tmpdir(), "r");
    try {
      expect(syncFilesystem(handle.fd)).toBe(true);
    } finally {
      await handle.close();
    }
    expect(await syncfsTrusted(tmpdir())).toBe(true);
    expect(await syncfsTrusted("/dev/shm")).toBe(true);
    expect(await syncfsTrusted("/proc")).toBe(false);
    expect(await syncfsTrusted("/no/such/dir")).toBe(false);
  });

  for (const [label, limit] of [
    // No bound on others' dirty data: the test must not depend on what else the machine writes.
    ["with one syncfs", Number.POSITIVE_INFINITY],
    ["with an fsync per file, when other processes have writes waiting", Number.NEGATIVE_INFINITY],
  ] as const) {
    test(`files in two directories land whole under their names, an old one replaced, ${label}; no temporary file remains`, async () => {
      await withTempDir(async (dir) => {
        await mkdir(join(dir, "sub"));
        await writeFile(join(dir, "f0"), "old bytes");
        const files = new Map<string, Buffer>();
        for (let i = 0; i < 40; i++) files.set(join(dir, i % 2 ? "sub" : "", `f${i}`), randomBytes(i * 100));
        let group: GroupCommit;
        group = new GroupCommit(() => group.pending === files.size && group.flush(), limit);
        const results = await writeGroup(group, files);
        expect(results.every((r) => r.status === "fulfilled")).toBe(true);
        for (const [file, data] of files) expect((await readFile(file)).equals(data)).toBe(true);
        expect(await namesUnder(dir)).toEqual(["sub", ...[...files.keys()].map((f) => f.slice(dir.length + 1))].sort());
        const bySyncfs = limit === Number.POSITIVE_INFINITY;
        expect(group.stats).toEqual({ groups: 1, syncfsFiles: bySyncfs ? 40 : 0, fsyncFiles: bySyncfs ? 0 : 40 });
        expect(group.waiting).toBe(0);
      });
    });
  }

  test("one group over two filesystems (the temp directory and tmpfs): one syncfs each, every file whole under its name", async () => {
    await withTempDir(async (disk) => {
      await withTempDirUnder("/dev/shm", async (memory) => {
        const files = new Map<string, Buffer>();
        for (let i = 0; i < 10; i++) files.set(join(i % 2 ? disk : memory, `f${i}`), randomBytes(1000 + i));
        let group: GroupCommit;
        group = new GroupCommit(() => group.pending === files.size && group.flush(), Number.POSITIVE_INFINITY);
        expect((await writeGroup(group, files)).every((r) => r.status === "fulfilled")).toBe(true);
        for (const [file, data] of files) expect((await readFile(file)).equals(data)).toBe(true);
        expect(await namesUnder(disk)).toEqual(["f1", "f3", "f5", "f7", "f9"]);
        expect(await namesUnder(memory)).toEqual(["f0", "f2", "f4", "f6", "f8"]);
        expect(group.stats).toEqual({ groups: 1, syncfsFiles: 10, fsyncFiles: 0 });
      });
    });
  });

  test("a group that reaches its most files is flushed without waiting for the owner", async () => {
    await withTempDir(async (dir) => {
      const files = new Map<string, Buffer>();
      for (let i = 0; i < 12; i++) files.set(join(dir, `f${i}`), randomBytes(64));
      const group = new GroupCommit(() => {}, undefined, 5);
      let done = 0;
      const results = Promise.allSettled([...files].map(([path, data]) => group.write(path, data, 0o644).finally(() => done++)));
      // The two full groups went on their own; the owner flushes the rest.
      await waitFor("two full groups done and the last two files staged", () => done === 10 && group.pending === 2, 5000, 1);
      group.flush();
      expect((await results).every((r) => r.status === "fulfilled")).toBe(true);
      expect(group.stats.groups).toBe(3);
      for (const [file, data] of files) expect((await readFile(file)).equals(data)).toBe(true);
    });
  });

  test("a file whose destination is a directory fails alone: the others land, and no temporary file is left", async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, "taken"));
      await writeFile(join(dir, "taken", "inside"), "keep me");
      const files = new Map<string, Buffer>([
        [join(dir, "a"), randomBytes(10)],
        [join(dir, "taken"), randomBytes(10)],
        [join(dir, "b"), randomBytes(10)],
      ]);
      let group: GroupCommit;
      group = new GroupCommit(() => group.pending === files.size && group.flush());
      const [a, taken, b] = await writeGroup(group, files);
      expect([a!.status, taken!.status, b!.status]).toEqual(["fulfilled", "rejected", "fulfilled"]);
      expect(await namesUnder(dir)).toEqual(["a", "b", "taken", "taken/inside"]);
      expect(await readFile(join(dir, "taken", "inside"), "utf8")).toBe("keep me");
    });
  });

  test("a flush makes durable the files staged before it; one staged after it waits for the next flush", async () => {
    await withTempDir(async (dir) => {
      const group = new GroupCommit();
      const first = group.write(join(dir, "first"), Buffer.from("1"), 0o644);
      await waitFor("the first file staged", () => group.pending === 1, 5000, 1);
      group.flush();
      await first;
      const second = group.write(join(dir, "second"), Buffer.from("2"), 0o644);
      await waitFor("the second file staged", () => group.pending === 1, 5000, 1);
      expect(await namesUnder(dir)).toEqual([expect.stringMatching(/^\.second\.[0-9a-f]{8}\.dropbox-part$/), "first"]);
      group.flush();
      await second;
      expect(await namesUnder(dir)).toEqual(["first", "second"]);
      expect(group.stats.groups).toBe(2);
    });
  });
});
