/** Durable files hold exactly the bytes appended, whatever the sizes, the path (past the page cache or not) and the filesystem. */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, stat, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DIRECT_IO_ALIGNMENT_BYTES, misalignment } from "../src/core/direct-io-alignment";
import { DurableFile } from "../src/core/durable-file";
import { UNCACHED_WRITE_MIN_BYTES } from "../src/core/limits";
import { withTempDir, withTempDirUnder } from "./harness";

const MiB = 1024 * 1024;
/** Filesystems that have supported O_DIRECT for a decade: on them the direct path must be taken. */
const DIRECT_FILESYSTEMS = new Set([0xef53 /* ext2/3/4 */, 0x58465342 /* xfs */, 0x9123683e /* btrfs */]);

/** Writes `pieces` as a file created for `expectedBytes` (default: large enough to go past the page cache). */
async function writeAndRead(dir: string, pieces: Buffer[], expectedBytes = UNCACHED_WRITE_MIN_BYTES): Promise<{ bytes: Buffer; direct: boolean; mode: number }> {
  const path = join(dir, `f-${randomBytes(4).toString("hex")}`);
  const file = await DurableFile.create(path, 0o640, expectedBytes);
  const direct = file.isDirect;
  for (const piece of pieces) await file.append(piece);
  await file.commit();
  return { bytes: await readFile(path), direct, mode: (await stat(path)).mode & 0o777 };
}


const shapes: [string, number[]][] = [
  ["one block", [4096]],
  ["one byte", [1]],
  ["a block and a byte", [4097]],
  ["one 4 MiB chunk", [4 * MiB]],
  ["a chunk longer than one staged write", [9 * MiB + 123]],
  ["aligned chunks then a short tail", [4 * MiB, 4 * MiB, 777]],
  ["an unaligned piece, after which writes go buffered", [5000, 4 * MiB, 4096]],
  ["nothing", []],
];

for (const [label, root] of [["the temp directory", tmpdir()], ["tmpfs", "/dev/shm"]] as const) {
  describe(`durable files on ${label}`, () => {
    for (const [shape, sizes] of shapes) {
      test(`${shape}: the file holds exactly the bytes appended`, async () => {
        if (!existsSync(root)) throw new Error(`${root} is missing on this machine`);
        await withTempDirUnder(root, async (dir) => {
          const pieces = sizes.map((n) => randomBytes(n));
          const { bytes, mode } = await writeAndRead(dir, pieces);
          expect(bytes.byteLength).toBe(sizes.reduce((a, b) => a + b, 0));
          expect(bytes.equals(Buffer.concat(pieces))).toBe(true);
          expect(mode).toBe(0o640);
        });
      });
    }
  });
}

describe("durable files", () => {
  test("go past the page cache where the filesystem supports it", async () => {
    await withTempDir(async (dir) => {
      const { type } = await statfs(dir);
      const { direct } = await writeAndRead(dir, [randomBytes(MiB)]);
      if (DIRECT_FILESYSTEMS.has(type)) expect(direct).toBe(true);
      else expect(typeof direct).toBe("boolean");
    });
  });
  test("small ones stay in the page cache, and hold exactly the bytes appended", async () => {
    await withTempDir(async (dir) => {
      const pieces = [randomBytes(5000), randomBytes(4096), randomBytes(1)];
      const { bytes, direct, mode } = await writeAndRead(dir, pieces, UNCACHED_WRITE_MIN_BYTES - 1);
      expect(direct).toBe(false);
      expect(bytes.equals(Buffer.concat(pieces))).toBe(true);
      expect(mode).toBe(0o640);
    });
  });
  test("take bytes that already sit in aligned memory as they are, tail included", async () => {
    await withTempDir(async (dir) => {
      const raw = Buffer.allocUnsafeSlow(3 * MiB);
      const start = (DIRECT_IO_ALIGNMENT_BYTES - misalignment(raw)) % DIRECT_IO_ALIGNMENT_BYTES;
      const aligned = raw.subarray(start, start + 2 * MiB + 100);
      randomBytes(aligned.byteLength).copy(aligned);
      expect(misalignment(aligned)).toBe(0);
      const { bytes } = await writeAndRead(dir, [aligned]);
      expect(bytes.equals(aligned)).toBe(true);
    });
  });
  test("refuse to replace an existing file: a large one when created, a small one when committed", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "taken");
      await Bun.write(path, "keep me");
      await expect(DurableFile.create(path, 0o600, UNCACHED_WRITE_MIN_BYTES)).rejects.toMatchObject({ code: "EEXIST" });
      const small = await DurableFile.create(path, 0o600, 10);
      await small.append(Buffer.from("overwrite"));
      await expect(small.commit()).rejects.toMatchObject({ code: "EEXIST" });
      expect(await readFile(path, "utf8")).toBe("keep me");
    });
  });
  test("a small one keeps the bytes as appended though the caller reuses its buffer, and spills to disk past the line", async () => {
    await withTempDir(async (dir) => {
      const reused = Buffer.from(randomBytes(1000));
      const first = Buffer.from(reused);
      const grown = randomBytes(UNCACHED_WRITE_MIN_BYTES);
      const path = join(dir, "f");
      const file = await DurableFile.create(path, 0o600, 1000);
      await file.append(reused);
      reused.fill(7);
      expect(existsSync(path)).toBe(false); // held until commit
      await file.append(grown); // more than announced: goes to disk now
      expect(existsSync(path)).toBe(true);
      await file.commit();
      expect((await readFile(path)).equals(Buffer.concat([first, grown]))).toBe(true);
    });
  });
});
