/** The pack store on a real disk: grouped appends, reads, reopening, garbage and compaction. */
import { describe, expect, test } from "bun:test";
import { appendFile, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PACK_RECORD_HEADER_BYTES, PackStore } from "../src/node/pack-store";
import { chunkIdOf } from "../src/core/chunk-id";
import { packBytesOnDisk } from "./disk-chunks";
import { flipByte, randomBytes, withTempDir } from "./harness";

const KiB = 1024;
const silent = () => {};

const chunks = (count: number, size: number) =>
  Array.from({ length: count }, () => {
    const data = randomBytes(size);
    return { id: chunkIdOf(data), data };
  });

const packFiles = async (dir: string) => (await readdir(dir)).filter((n) => n.endsWith(".pack")).sort();

describe("pack store", () => {
  test("concurrent puts are durable and readable, across a reopen, with room before the bytes", async () => {
    await withTempDir(async (dir) => {
      const items = chunks(300, 3 * KiB);
      let packs = await PackStore.open(dir, silent);
      await Promise.all(items.map((c) => packs.put(c.id, c.data)));
      expect(packs.totals()).toEqual({ count: 300, bytes: 300 * 3 * KiB });
      for (const c of items.slice(0, 20)) {
        const data = (await packs.read(c.id, 10))!.data;
        expect(Buffer.compare(data, c.data)).toBe(0);
        expect(data.byteOffset).toBeGreaterThanOrEqual(10);
      }
      expect(await packs.read("ab".repeat(32))).toBeNull();
      await packs.close();

      packs = await PackStore.open(dir, silent);
      expect(packs.totals()).toEqual({ count: 300, bytes: 300 * 3 * KiB });
      for (const c of items) expect(Buffer.compare((await packs.read(c.id))!.data, c.data)).toBe(0);
      // In id order, after a given id, bounded.
      const ids = items.map((c) => c.id).sort();
      expect(packs.list(ids[99]!, 5).map((r) => r.chunkId)).toEqual(ids.slice(100, 105));
      await packs.close();
    });
  });

  test("bytes past the last record (a group cut short by a crash) are skipped, and new records go after them", async () => {
    await withTempDir(async (dir) => {
      const [a, b] = chunks(2, 5 * KiB);
      let packs = await PackStore.open(dir, silent);
      await packs.put(a!.id, a!.data);
      await packs.close();
      const [pack] = await packFiles(dir);
      const before = (await stat(join(dir, pack!))).size;
      await appendFile(join(dir, pack!), randomBytes(777));

      packs = await PackStore.open(dir, silent);
      await packs.put(b!.id, b!.data);
      expect(packs.lookup(b!.id)!.offset).toBe(before + 777);
      expect(Buffer.compare((await packs.read(a!.id))!.data, a!.data)).toBe(0);
      expect(Buffer.compare((await packs.read(b!.id))!.data, b!.data)).toBe(0);
      await packs.close();
    });
  });

  test("a record that is not the one its row names reads as empty (a bad copy)", async () => {
    await withTempDir(async (dir) => {
      const [a] = chunks(1, 2 * KiB);
      const packs = await PackStore.open(dir, silent);
      await packs.put(a!.id, a!.data);
      const [pack] = await packFiles(dir);
      // Rot the record's header: its id no longer names the chunk.
      await flipByte(join(dir, pack!), 3);
      expect((await packs.read(a!.id))!.data.byteLength).toBe(0);
      await packs.close();
    });
  });

  test("removed chunks are gone; mostly-garbage sealed packs are compacted away and the live chunks survive it", async () => {
    await withTempDir(async (dir) => {
      const items = chunks(200, 1 * KiB);
      // Seal at 16 KiB: a new pack every ~15 records.
      let packs = await PackStore.open(dir, silent, 16 * KiB);
      for (const c of items) await packs.put(c.id, c.data);
      const packsBefore = (await packFiles(dir)).length;
      expect(packsBefore).toBeGreaterThan(10);
      const kept = items.filter((_, i) => i % 4 === 0);
      packs.removeWhere(items.filter((_, i) => i % 4 !== 0).map((c) => c.id), () => true);
      await packs.idle();

      expect(packs.totals()).toEqual({ count: kept.length, bytes: kept.length * KiB });
      for (const c of items.filter((_, i) => i % 4 !== 0).slice(0, 10)) expect(await packs.read(c.id)).toBeNull();
      for (const c of kept) expect(Buffer.compare((await packs.read(c.id))!.data, c.data)).toBe(0);
      const packsAfter = await packFiles(dir);
      const bytesAfter = await packBytesOnDisk(dir);
      // Three quarters were garbage: what is left on disk is near the live records' size.
      expect(bytesAfter).toBeLessThan(2 * kept.length * (KiB + 36) + 16 * KiB);
      expect(packsAfter.length).toBeLessThan(packsBefore / 2);
      await packs.close();

      packs = await PackStore.open(dir, silent, 16 * KiB);
      for (const c of kept) expect(Buffer.compare((await packs.read(c.id))!.data, c.data)).toBe(0);
      await packs.close();
    });
  });

  test("packs whose index is gone get it rebuilt from their records, rotten and torn ones left out", async () => {
    await withTempDir(async (dir) => {
      const items = chunks(60, 2 * KiB);
      let packs = await PackStore.open(dir, silent, 16 * KiB);
      for (const c of items) await packs.put(c.id, c.data);
      const rotten = items[17]!;
      const at = packs.lookup(rotten.id)!;
      await packs.close();
      // Rot one record's bytes, tear the last pack's tail, and lose the index.
      await flipByte(join(dir, `${String(at.pack).padStart(8, "0")}.pack`), at.offset + PACK_RECORD_HEADER_BYTES + 5);
      const files = await packFiles(dir);
      await appendFile(join(dir, files.at(-1)!), randomBytes(50));
      for (const f of await readdir(dir)) if (f.startsWith("packs.sqlite")) await rm(join(dir, f));

      const lines: string[] = [];
      packs = await PackStore.open(dir, (line) => lines.push(line), 16 * KiB);
      expect(lines.join("\n")).toContain("rebuilt from");
      expect(packs.totals().count).toBe(items.length - 1);
      expect(await packs.read(rotten.id)).toBeNull();
      for (const c of items) if (c !== rotten) expect(Buffer.compare((await packs.read(c.id))!.data, c.data)).toBe(0);
      // New records still go after whatever the last pack held.
      const [extra] = chunks(1, 100);
      await packs.put(extra!.id, extra!.data);
      expect(Buffer.compare((await packs.read(extra!.id))!.data, extra!.data)).toBe(0);
      await packs.close();
    });
  });

  test("random puts, removes, compactions and reopenings agree with a model of what should be there", async () => {
    await withTempDir(async (dir) => {
      // Deterministic, so a failure reproduces: a 32-bit LCG.
      let state = Number(process.env.PACK_MODEL_SEED ?? 12345);
      const random = (n: number) => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return state % n;
      };
      const model = new Map<string, Uint8Array>();
      const sealBytes = 8 * KiB;
      let packs = await PackStore.open(dir, silent, sealBytes);
      const check = async (settled: boolean) => {
        expect(packs.totals()).toEqual({ count: model.size, bytes: [...model.values()].reduce((sum, d) => sum + d.byteLength, 0) });
        for (const [id, data] of model) expect(Buffer.compare((await packs.read(id))!.data, data)).toBe(0);
        expect(packs.list("", 100_000).map((r) => r.chunkId)).toEqual([...model.keys()].sort());
        // What the packs take beyond the chunks' bytes, as a node's capacity counts it (once no
        // compaction is moving records, so that the files on disk hold still).
        if (!settled) return;
        const onDisk = await packBytesOnDisk(dir);
        expect(packs.overheadBytes).toBe(onDisk - [...model.values()].reduce((sum, d) => sum + d.byteLength, 0));
      };
      for (let step = 0; step < 60; step++) {
        const action = random(10);
        if (action < 5) {
          // A burst of concurrent puts, some of ids already there (as a re-sent chunk would be).
          const fresh = chunks(1 + random(40), 1 + random(3 * KiB));
          const again = [...model.keys()].filter(() => random(8) === 0).map((id) => ({ id, data: model.get(id)! }));
          await Promise.all([...fresh, ...again].map((c) => packs.put(c.id, c.data)));
          for (const c of fresh) model.set(c.id, c.data);
        } else if (action < 8) {
          // Remove a random share, without waiting for the compaction it may start.
          const victims = [...model.keys()].filter(() => random(3) > 0);
          const { removed } = packs.removeWhere(victims, () => true);
          expect([...removed.keys()].sort()).toEqual([...victims].sort());
          for (const id of victims) model.delete(id);
        } else if (action === 8) {
          await packs.close();
          packs = await PackStore.open(dir, silent, sealBytes);
        } else {
          await packs.idle();
        }
        await check(action === 9);
      }
      await packs.idle();
      await check(true);
      // After compaction, every sealed pack is at least half live: garbage is bounded.
      const live = [...model.values()].reduce((sum, d) => sum + 36 + d.byteLength, 0);
      const onDisk = await packBytesOnDisk(dir);
      expect(onDisk).toBeLessThanOrEqual(2 * live + 2 * sealBytes);
      await packs.close();
    });
  });
});
