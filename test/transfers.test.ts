/** Transfers at scale: many paths, directory trees up and down, many small files quickly, and output scripts can trust. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { ANSI, BIN, cliCommandLine, randomBytes, sha256File, waitFor, withCluster, withTempDir } from "./harness";
import { chunkIdOf } from "../src/core/chunk-id";
import { LIST_MANIFESTS_MAX_FILE_CHUNKS } from "../src/core/limits";
import { StoragePool } from "../src/rpc/client";
import { collectOutcomes, downloadMany, type DownloadItem } from "../src/client/transfers";
import { planDownload } from "../src/client/plans";
import { uploadFile } from "../src/client/upload";

const KiB = 1024;

/** Every regular file under `dir`, as '/'-separated relative paths, sorted. */
async function treeOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe("transfers", () => {
  test("upload -r with --prefix keeps relative paths, skips links with a note; download -r recreates the tree byte for byte", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "src");
        await mkdir(join(src, "sub", "deep"), { recursive: true });
        await writeFile(join(src, "a.bin"), randomBytes(300 * KiB));
        await writeFile(join(src, "sub", "b.txt"), "hello\n");
        await writeFile(join(src, "sub", "deep", "c.bin"), randomBytes(5 * KiB));
        await writeFile(join(src, "sub", "deep", "empty"), "");
        await symlink("a.bin", join(src, "link"));

        const up = await cluster.run(["upload", "-r", src, "--prefix", "backup/2024", "--chunk-size", "64KiB", "--json"]);
        expect(up.exitCode).toBe(0);
        expect(up.stderr).toBe("");
        const doc = JSON.parse(up.stdout);
        expect(doc.files.map((f: { name: string }) => f.name).sort()).toEqual(["backup/2024/a.bin", "backup/2024/sub/b.txt", "backup/2024/sub/deep/c.bin", "backup/2024/sub/deep/empty"]);
        const a = doc.files.find((f: { name: string }) => f.name === "backup/2024/a.bin");
        expect(a).toMatchObject({ size: 300 * KiB, chunkCount: 5, chunkSize: 64 * KiB, chunksWritten: 10 });
        expect(doc.skipped).toEqual([{ path: join(src, "link"), reason: "symbolic link (not followed)" }]);
        expect(doc.failed).toEqual([]);
        expect(doc.totals).toMatchObject({ files: 4, bytes: 300 * KiB + 6 + 5 * KiB });

        const text = await cluster.run(["upload", "-r", src, "--prefix", "again/"]);
        expect(text.exitCode).toBe(0);
        expect(text.stderr).toBe(`skipped ${join(src, "link")}: symbolic link (not followed)\n`);
        expect(text.stdout).toContain("uploaded again/sub/deep/c.bin (5.0 KiB, 1 chunks");
        expect(text.stdout).toMatch(/4 of 4 files uploaded, 305\.0 KiB in \S+\n$/);
        expect(text.stdout + text.stderr).not.toContain(ANSI);

        const out = join(dir, "out");
        const down = await cluster.run(["download", "-r", "backup/2024", out, "--json"]);
        expect(down.exitCode).toBe(0);
        const downDoc = JSON.parse(down.stdout);
        expect(downDoc.files).toHaveLength(4);
        expect(downDoc.files.find((f: { name: string }) => f.name === "backup/2024/sub/b.txt").output).toBe(join(out, "sub", "b.txt"));
        expect(await treeOf(out)).toEqual(["a.bin", "sub/b.txt", "sub/deep/c.bin", "sub/deep/empty"]);
        for (const rel of await treeOf(out)) expect(await sha256File(join(out, rel))).toBe(await sha256File(join(src, rel)));

        const plain = await cluster.run(["download", "-r", "again/sub/", join(dir, "out2")]);
        expect(plain.exitCode).toBe(0);
        expect(plain.stdout).toMatch(/3 of 3 files downloaded/);
        expect(plain.stdout + plain.stderr).not.toContain(ANSI);
        expect(await treeOf(join(dir, "out2"))).toEqual(["b.txt", "deep/c.bin", "deep/empty"]);
      });
    });
  });

  test("many paths at once: each stored under --prefix by basename; --quiet prints nothing", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const paths = [];
        for (let i = 0; i < 5; i++) {
          paths.push(join(dir, `f${i}.bin`));
          await writeFile(paths[i]!, randomBytes(10 * KiB + i));
        }
        const up = await cluster.run(["upload", ...paths, "--prefix", "many", "--quiet"]);
        expect(up).toEqual({ exitCode: 0, stdout: "", stderr: "" });
        const list = JSON.parse((await cluster.run(["list", "many/", "--json"])).stdout);
        expect(list.files.map((f: { name: string; size: number }) => [f.name, f.size])).toEqual(paths.map((_, i) => [`many/f${i}.bin`, 10 * KiB + i]));
      });
    });
  });

  test("usage mistakes exit 2 before anything is sent; an empty prefix exits 3", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await mkdir(join(dir, "d"));
        await writeFile(join(dir, "d", "x"), "x");
        await writeFile(join(dir, "x"), "y");
        const cases: [string[], RegExp][] = [
          [["upload", join(dir, "d")], /is a directory; use -r/],
          [["upload", join(dir, "x"), join(dir, "d", "x")], /would both be stored as "x"/],
          [["upload", "-r", join(dir, "d"), "--as", "y"], /--as names one file/],
          [["upload", join(dir, "x"), "--prefix", "a//b"], /invalid name/],
          [["download", "-r", "d/", "-"], /not to stdout/],
        ];
        for (const [args, pattern] of cases) {
          const result = await cluster.run(args);
          expect(result.exitCode).toBe(2);
          expect(result.stderr).toMatch(pattern);
        }
        expect(JSON.parse((await cluster.run(["list", "--json"])).stdout).files).toEqual([]);
        const none = await cluster.run(["download", "-r", "nothing/", join(dir, "out"), "--json"]);
        expect(none.exitCode).toBe(3);
        expect(JSON.parse(none.stderr).error).toMatchObject({ kind: "NOT_FOUND", message: 'no files under "nothing/"' });
      });
    });
  });

  test("download -r takes small files' manifests from the listing, larger ones on their own, and reads a stale one again", async () => {
    await withCluster({ nodes: 2, replication: 1, masterArgs: ["--repair-interval", "100", "--gc-grace", "0"] }, async (cluster) => {
      await withTempDir(async (dir) => {
        const oldBytes = randomBytes(4 * KiB);
        const newBytes = randomBytes(5 * KiB);
        const bigBytes = randomBytes((LIST_MANIFESTS_MAX_FILE_CHUNKS + 1) * 64 * KiB);
        await writeFile(join(dir, "small"), oldBytes);
        await writeFile(join(dir, "big"), bigBytes);
        expect((await cluster.run(["upload", join(dir, "small"), join(dir, "big"), "--prefix", "t/", "--chunk-size", "64KiB", "--quiet"])).exitCode).toBe(0);

        const master = cluster.api();
        const plan = await planDownload(master, "t", join(dir, "out"));
        expect([...(plan.items() as Iterable<DownloadItem>)].map((i) => [i.name, i.manifest?.chunks.length])).toEqual([["t/big", undefined], ["t/small", 1]]);

        // Replaced after the listing, and the old chunk collected: the listed manifest is stale.
        await writeFile(join(dir, "small"), newBytes);
        expect((await cluster.run(["upload", join(dir, "small"), "--as", "t/small", "--quiet"])).exitCode).toBe(0);
        const oldId = chunkIdOf(oldBytes);
        await waitFor("the replaced chunk to be collected", async () => {
          for (const node of cluster.nodes) if ((await cluster.chunkFiles(node)).has(oldId)) return false;
          return true;
        });

        const pool = new StoragePool();
        try {
          const outcomes = await collectOutcomes<DownloadItem, unknown>((onOutcome) => downloadMany(master, pool, plan, onOutcome));
          expect(outcomes.map((o) => [o.item.name, o.error])).toEqual([["t/big", undefined], ["t/small", undefined]]);
        } finally {
          pool.close();
        }
        expect(await readFile(join(dir, "out", "small"))).toEqual(Buffer.from(newBytes));
        expect(await readFile(join(dir, "out", "big"))).toEqual(Buffer.from(bigBytes));
      });
    });
  });

  test("a download plan too large to keep lists again, page by page, as it goes: the same items, and every file comes down", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "src");
        await mkdir(join(src, "d"), { recursive: true });
        // Over two pages of the master's listing (1000 files each).
        await mkdir(join(src, "m"));
        const names = ["a", "b", "d/c", "d/e", "f", ...Array.from({ length: 2100 }, (_, i) => `m/${String(i).padStart(4, "0")}`)];
        for (const name of names) await writeFile(join(src, name), `bytes of ${name}`);
        expect((await cluster.run(["upload", "-r", src, "--prefix", "big/", "--quiet"])).exitCode).toBe(0);
        const master = cluster.api();
        const itemsOf = async (plan: { items(): Iterable<DownloadItem> | AsyncIterable<DownloadItem> }) => {
          const out: DownloadItem[] = [];
          for await (const item of plan.items()) out.push(item);
          return out;
        };
        const kept = await planDownload(master, "big", join(dir, "out"));
        const relisted = await planDownload(master, "big", join(dir, "out"), 2);
        expect(Array.isArray(kept.items())).toBe(true);
        expect(Array.isArray(relisted.items())).toBe(false);
        expect([relisted.files, relisted.bytes]).toEqual([kept.files, kept.bytes]);
        expect(await itemsOf(relisted)).toEqual(await itemsOf(kept));
        expect((await itemsOf(relisted)).map((i) => [i.name, i.manifest?.chunks.length])).toEqual(names.map((n) => [`big/${n}`, 1]));
        const pool = new StoragePool();
        try {
          const outcomes = await collectOutcomes<DownloadItem, unknown>((onOutcome) => downloadMany(master, pool, relisted, onOutcome));
          expect(outcomes.map((o) => [o.item.name, o.error])).toEqual(names.map((n) => [`big/${n}`, undefined]));
        } finally {
          pool.close();
        }
        expect(await treeOf(join(dir, "out"))).toEqual([...names].sort());
        for (const name of [...names.slice(0, 6), names[names.length - 1]!]) expect(await readFile(join(dir, "out", ...name.split("/")), "utf8")).toBe(`bytes of ${name}`);
      });
    });
  });

  test("download -r is a snapshot of its listing: a file deleted after it still comes down while its chunks are kept", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const bytes = randomBytes(3 * KiB);
        await writeFile(join(dir, "kept"), bytes);
        expect((await cluster.run(["upload", join(dir, "kept"), "--prefix", "snap/", "--quiet"])).exitCode).toBe(0);
        const master = cluster.api();
        const plan = await planDownload(master, "snap", join(dir, "out"));
        expect((await cluster.run(["delete", "snap/kept"])).exitCode).toBe(0);
        const pool = new StoragePool();
        try {
          const outcomes = await collectOutcomes<DownloadItem, unknown>((onOutcome) => downloadMany(master, pool, plan, onOutcome));
          expect(outcomes.map((o) => o.error)).toEqual([undefined]);
        } finally {
          pool.close();
        }
        expect(await readFile(join(dir, "out", "kept"))).toEqual(Buffer.from(bytes));
        // Listed afresh, it is gone.
        expect((await cluster.run(["download", "-r", "snap", join(dir, "again"), "--quiet"])).exitCode).toBe(3);
      });
    });
  });

  test("download -r of many files over the small-file line keeps few open: it runs under a 128-descriptor limit", async () => {
    await withCluster({ nodes: 2, replication: 1 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "mid");
        await mkdir(src);
        // 300 KiB each: opened when their download starts, unlike small files written at the end.
        const files = Array.from({ length: 150 }, (_, i) => ({ name: `m${String(i).padStart(3, "0")}`, data: randomBytes(300 * KiB) }));
        for (const f of files) await writeFile(join(src, f.name), f.data);
        expect((await cluster.run(["upload", "-r", src, "--prefix", "mid", "--quiet"])).exitCode).toBe(0);
        const out = join(dir, "out");
        const proc = Bun.spawn(["sh", "-c", `ulimit -n 128 && exec ${cliCommandLine(["download", "-r", "mid", out, "--quiet"])}`], {
          env: { ...process.env, DROPBOX_MASTER: cluster.master.address },
          stdout: "pipe",
          stderr: "pipe",
        });
        const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
        expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
        for (const f of files) expect((await readFile(join(out, f.name))).equals(Buffer.from(f.data))).toBe(true);
      });
    });
  });

  test("600 small files go up and come down under a 256-descriptor limit (macOS's default)", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "many");
        await mkdir(src);
        for (let i = 0; i < 600; i++) await writeFile(join(src, `f${i}`), randomBytes(2 * KiB));
        const limited = async (args: string[]) => {
          const proc = Bun.spawn(["sh", "-c", `ulimit -n 256 && exec ${cliCommandLine(args)}`], {
            env: { ...process.env, DROPBOX_MASTER: cluster.master.address },
            stdout: "pipe",
            stderr: "pipe",
          });
          const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
          return { exitCode, stderr };
        };
        expect(await limited(["upload", "-r", src, "--prefix", "many", "--quiet"])).toEqual({ exitCode: 0, stderr: "" });
        expect(await limited(["download", "-r", "many", join(dir, "back"), "--quiet"])).toEqual({ exitCode: 0, stderr: "" });
        expect(await treeOf(join(dir, "back"))).toEqual(await treeOf(src));
      });
    });
  });

  test("a commit answered with missing chunks sends them again, read afresh from the file, small or large", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const master = cluster.api();
        const pool = new StoragePool();
        try {
          // 100 KiB is read whole at once, 600 KiB through a handle: both are let go before the commit.
          for (const size of [100 * KiB, 600 * KiB]) {
            const bytes = randomBytes(size);
            const path = join(dir, `f${size}`);
            await writeFile(path, bytes);
            // The master's answer to a commit that raced a collection of one of its chunks.
            let answered = false;
            const racing = {
              requestPutTargets: master.requestPutTargets,
              getManifest: master.getManifest,
              requestGetTargets: master.requestGetTargets,
              announceManifest: async (r: Parameters<typeof master.announceManifest>[0]) => {
                if (answered) return master.announceManifest(r);
                answered = true;
                return { status: "MISSING_CHUNKS", missingChunkIds: [r.chunks[1]!.chunkId], file: null };
              },
            };
            const result = await uploadFile({ master: racing, pool, path, name: `resent/${size}`, chunkSize: 64 * KiB, expectedSize: size });
            expect(result.retries).toBe(1);
            expect(result.file.size).toBe(size);
            const out = join(dir, `back${size}`);
            expect((await cluster.run(["download", `resent/${size}`, out, "--quiet"])).exitCode).toBe(0);
            expect((await readFile(out)).equals(Buffer.from(bytes))).toBe(true);
          }
        } finally {
          pool.close();
        }
      });
    });
  });

  test("download -r: a file that cannot be put in place fails alone (exit 2, one line); the others land whole, and no temporary file is left", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "src");
        await mkdir(join(src, "sub"), { recursive: true });
        for (let i = 0; i < 30; i++) await writeFile(join(src, i % 3 ? "sub" : "", `f${i}`), randomBytes(i * 100));
        expect((await cluster.run(["upload", "-r", src, "--prefix", "g/", "--quiet"])).exitCode).toBe(0);
        // A directory where one file is to go: it cannot be renamed over.
        const out = join(dir, "out");
        await mkdir(join(out, "sub", "f4"), { recursive: true });
        await writeFile(join(out, "sub", "f4", "keep"), "mine");
        const down = await cluster.run(["download", "-r", "g/", out]);
        expect(down.exitCode).toBe(2);
        expect(down.stderr.trim().split("\n")).toHaveLength(1);
        expect(down.stderr).toContain("1 of 30 files failed; first: g/sub/f4");
        const expected = (await treeOf(src)).filter((rel) => rel !== "sub/f4");
        expect(await treeOf(out)).toEqual([...expected, "sub/f4/keep"].sort());
        for (const rel of expected) expect((await readFile(join(out, rel))).equals(await readFile(join(src, rel)))).toBe(true);
      });
    });
  });

  test("a download stopped by SIGINT or SIGTERM removes its partial file and exits 130 or 143", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        // Large enough that the download is still writing when its temporary file is seen.
        await writeFile(join(dir, "big.bin"), randomBytes(256 * 1024 * KiB));
        expect((await cluster.run(["upload", join(dir, "big.bin"), "--quiet"])).exitCode).toBe(0);
        for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
          const out = join(dir, `out-${signal}`);
          await mkdir(out);
          const proc = Bun.spawn([BIN, "download", "big.bin", join(out, "big.bin"), "--quiet"], { env: { ...process.env, DROPBOX_MASTER: cluster.master.address }, stdout: "ignore", stderr: "pipe" });
          await waitFor("the download's temporary file", async () => proc.exitCode === null && (await readdir(out)).some((n) => n.endsWith(".dropbox-part")), 10_000, 2);
          proc.kill(signal);
          expect(await proc.exited).toBe(code);
          expect(await new Response(proc.stderr).text()).toBe("");
          expect(await readdir(out)).toEqual([]);
        }
      });
    });
  });

  test("a many-file download stopped by SIGINT while small files wait for their group removes them all and exits 130", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "src");
        await mkdir(src);
        // Fewer than a group's most files, so only the owner's rule could flush them.
        for (let i = 0; i < 40; i++) await writeFile(join(src, `f${i}`), randomBytes(1000 + i));
        expect((await cluster.run(["upload", "-r", src, "--prefix", "w/", "--quiet"])).exitCode).toBe(0);
        // A frozen node: files read from it first hang, so the group never sees every download waiting.
        const frozen = cluster.nodes[0]!;
        frozen.proc!.kill("SIGSTOP");
        try {
          const out = join(dir, "out");
          await mkdir(out);
          const proc = Bun.spawn([BIN, "download", "-r", "w/", out, "--quiet"], { env: { ...process.env, DROPBOX_MASTER: cluster.master.address }, stdout: "ignore", stderr: "pipe" });
          await waitFor("files staged in a group", async () => proc.exitCode === null && (await readdir(out)).some((n) => n.endsWith(".dropbox-part")), 10_000, 2);
          proc.kill("SIGINT");
          expect(await proc.exited).toBe(130);
          expect(await new Response(proc.stderr).text()).toBe("");
          expect((await readdir(out)).filter((n) => n.endsWith(".dropbox-part"))).toEqual([]);
        } finally {
          frozen.proc!.kill("SIGCONT");
        }
      });
    });
  });

  test("1000 files of 4 KiB go up and come back down, each way in a few seconds, intact", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "small");
        for (let d = 0; d < 10; d++) {
          await mkdir(join(src, `d${d}`), { recursive: true });
          for (let i = 0; i < 100; i++) await writeFile(join(src, `d${d}`, `f${i}`), randomBytes(4 * KiB));
        }
        let started = Date.now();
        const up = await cluster.run(["upload", "-r", src, "--prefix", "small", "--json"]);
        const upMs = Date.now() - started;
        // stderr in the assertion, so a failure says why.
        expect({ exitCode: up.exitCode, stderr: up.stderr }).toEqual({ exitCode: 0, stderr: "" });
        expect(JSON.parse(up.stdout).totals.files).toBe(1000);
        expect(JSON.parse(up.stdout).totals.retries).toBe(0);
        started = Date.now();
        const down = await cluster.run(["download", "-r", "small", join(dir, "back"), "--quiet"]);
        const downMs = Date.now() - started;
        expect(down).toEqual({ exitCode: 0, stdout: "", stderr: "" });
        process.stderr.write(`1000 x 4 KiB: upload ${upMs} ms, download ${downMs} ms (whole command, including process start)\n`);
        const names = await treeOf(src);
        expect(await treeOf(join(dir, "back"))).toEqual(names);
        // Every file byte for byte: chunks of many files share receive buffers, and one of them
        // once came back with another's bytes.
        const differing: string[] = [];
        for (const rel of names) if (!(await readFile(join(dir, "back", rel))).equals(await readFile(join(src, rel)))) differing.push(rel);
        expect(differing).toEqual([]);
        // Generous bounds: the machine is shared; the point is files overlap instead of queueing.
        expect(upMs).toBeLessThan(15_000);
        expect(downMs).toBeLessThan(15_000);
        await waitFor("the master to list all 1000", async () => JSON.parse((await cluster.run(["list", "small/", "--json"])).stdout).files.length === 1000);
      });
    });
  });
});
