/** Whole files read past the page cache come back byte for byte, aligned, with the room asked for in front, on any filesystem. */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { misalignment } from "../src/core/direct-io-alignment";
import { readWholeFile } from "../src/core/uncached-read";
import { withTempDir, withTempDirUnder } from "./harness";

const MiB = 1024 * 1024;
/** Filesystems that have supported O_DIRECT for a decade: on them the direct path must be taken. */
const DIRECT_FILESYSTEMS = new Set([0xef53 /* ext2/3/4 */, 0x58465342 /* xfs */, 0x9123683e /* btrfs */]);
const SIZES = [0, 1, 4095, 4096, 4097, 300 * 1024, 4 * MiB, 4 * MiB + 1];


for (const [label, root] of [["the temp directory", tmpdir()], ["tmpfs", "/dev/shm"]] as const) {
  describe(`whole-file reads on ${label}`, () => {
    for (const headroom of [0, 11]) {
      test(`files of ${SIZES.length} sizes, block edges included, with ${headroom} bytes of headroom: the bytes as written`, async () => {
        if (!existsSync(root)) throw new Error(`${root} is missing on this machine`);
        await withTempDirUnder(root, async (dir) => {
          const mustGoDirect = DIRECT_FILESYSTEMS.has((await statfs(dir)).type);
          for (const size of SIZES) {
            const path = join(dir, `f${size}`);
            const bytes = randomBytes(size);
            await writeFile(path, bytes);
            const read = await readWholeFile(path, headroom, 64 * MiB);
            expect(read.size).toBe(size);
            expect(read.data!.equals(bytes)).toBe(true);
            expect(read.data!.byteOffset).toBeGreaterThanOrEqual(headroom);
            if (mustGoDirect) expect(read.direct).toBe(true);
            if (read.direct && size > 0) expect(misalignment(read.data!)).toBe(0);
          }
        });
      });
    }
  });
}

describe("whole-file reads", () => {
  test("a file over the limit is sized, not read; a missing one rejects with ENOENT", async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "big"), randomBytes(8192));
      expect(await readWholeFile(join(dir, "big"), 0, 8191)).toMatchObject({ data: null, size: 8192 });
      expect(await readWholeFile(join(dir, "none"), 0, 8191).catch((e) => e.code)).toBe("ENOENT");
    });
  });
});
