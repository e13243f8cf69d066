/** Files of every awkward size go up and come back byte for byte, with both default and small chunks. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readFile, writeFile } from "node:fs/promises";
import { randomBytes, sha256File, withCluster, withTempDir } from "./harness";

const MiB = 1024 * 1024;
const KiB = 1024;

async function roundTrip(chunkArgs: string[], sizes: number[]) {
  await withCluster({ nodes: 3 }, async (cluster) => {
    await withTempDir(async (dir) => {
      for (const size of sizes) {
        const input = join(dir, `in-${size}.bin`);
        const output = join(dir, `out-${size}.bin`);
        await writeFile(input, randomBytes(size));
        const up = await cluster.run(["upload", input, "--as", `sizes/${size}.bin`, "--json", ...chunkArgs]);
        expect(up.stderr).toBe("");
        expect(up.exitCode).toBe(0);
        const uploaded = JSON.parse(up.stdout).files[0];
        expect(uploaded.size).toBe(size);
        // A healthy cluster needs no retries: one would be hiding a bug.
        expect(uploaded.retries).toBe(0);
        const down = await cluster.run(["download", `sizes/${size}.bin`, output]);
        expect(down.exitCode).toBe(0);
        expect(await sha256File(output)).toBe(await sha256File(input));
        expect((await readFile(output)).byteLength).toBe(size);
      }
    });
  });
}

describe("round trip", () => {
  test("0 B, 1 B, one chunk, one chunk + 1, 50 MiB with the default 4 MiB chunks", async () => {
    await roundTrip([], [0, 1, 4 * MiB, 4 * MiB + 1, 50 * MiB]);
  });

  test("the same sizes with --chunk-size 64k", async () => {
    await roundTrip(["--chunk-size", "64k"], [0, 1, 64 * KiB, 64 * KiB + 1, 50 * MiB]);
  });

  test("download to stdout with '-' streams the exact bytes", async () => {
    await withCluster({ nodes: 3 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const data = randomBytes(9 * MiB + 7);
        await writeFile(join(dir, "f.bin"), data);
        expect((await cluster.run(["upload", join(dir, "f.bin")])).exitCode).toBe(0);
        const proc = Bun.spawn([(await import("./harness")).BIN, "download", "f.bin", "-"], { env: { ...process.env, DROPBOX_MASTER: cluster.master.address }, stdout: "pipe", stderr: "pipe" });
        const bytes = new Uint8Array(await new Response(proc.stdout).arrayBuffer());
        expect(await proc.exited).toBe(0);
        expect(Buffer.compare(Buffer.from(bytes), Buffer.from(data))).toBe(0);
      });
    });
  });

  test("the remote name defaults to the basename, and the output to the name's basename", async () => {
    await withCluster({ nodes: 3 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "report.pdf"), "hello report");
        expect((await cluster.run(["upload", join(dir, "report.pdf")])).exitCode).toBe(0);
        const list = await cluster.run(["list", "--json"]);
        expect(JSON.parse(list.stdout).files.map((f: { name: string }) => f.name)).toEqual(["report.pdf"]);
        const outDir = join(dir, "out");
        await Bun.write(join(outDir, ".keep"), "");
        expect((await cluster.run(["download", "report.pdf"], { cwd: outDir })).exitCode).toBe(0);
        expect(await readFile(join(outDir, "report.pdf"), "utf8")).toBe("hello report");
      });
    });
  });
});
