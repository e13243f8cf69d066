/** TLS between every pair of processes, optionally mutual: plaintext and strangers are refused. */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useTlsClient } from "../src/rpc/tls";
import { randomBytes, sha256File, withCluster, withTempDir } from "./harness";

const openssl = Bun.which("openssl");
if (!openssl) console.warn("tls tests skipped: openssl is not installed (apt-get install openssl)");

/** A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all made here. */
async function makeCertificates(): Promise<{ dir: string; ca: string; cert: string; key: string; clientCert: string; clientKey: string; otherCa: string }> {
  const dir = await mkdtemp(join(tmpdir(), "dropbox-tls-"));
  const run = (...args: string[]) => {
    const result = Bun.spawnSync([openssl!, ...args], { cwd: dir, stderr: "pipe" });
    if (result.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run("req", "-x509", ...ec, "-days", "2", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=dropbox test CA");
  run("req", "-x509", ...ec, "-days", "2", "-keyout", "other.key", "-out", "other.crt", "-subj", "/CN=some other CA");
  await writeFile(join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  run("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-out", "server.crt", "-extfile", "server.ext");
  run("req", ...ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=ci job");
  run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-out", "client.crt");
  const p = (f: string) => join(dir, f);
  return { dir, ca: p("ca.crt"), cert: p("server.crt"), key: p("server.key"), clientCert: p("client.crt"), clientKey: p("client.key"), otherCa: p("other.crt") };
}

afterEach(() => useTlsClient(null));

describe("tls", () => {
  test.skipIf(!openssl)("files go up and down over TLS; a plaintext client and a client trusting another CA are refused", async () => {
    const certs = await makeCertificates();
    try {
      // Processes dial each other by IP: certificates are checked against the name localhost.
      const server = ["--tls-cert", certs.cert, "--tls-key", certs.key, "--tls-ca", certs.ca, "--tls-server-name", "localhost"];
      useTlsClient({ ca: await readFile(certs.ca), serverName: "localhost" });
      await withCluster({ nodes: 2, replication: 2, masterArgs: server, nodeArgs: server }, async (cluster) => {
        await withTempDir(async (dir) => {
          const tls = ["--tls-ca", certs.ca, "--tls-server-name", "localhost"];
          await writeFile(join(dir, "f"), randomBytes(6 * 1024 * 1024));
          const up = await cluster.run(["upload", join(dir, "f"), ...tls]);
          expect(up.stderr).toBe("");
          expect(up.exitCode).toBe(0);
          expect((await cluster.run(["download", "f", join(dir, "g"), ...tls])).exitCode).toBe(0);
          expect(await sha256File(join(dir, "g"))).toBe(await sha256File(join(dir, "f")));
          const plain = await cluster.run(["list"]);
          expect(plain.exitCode).toBe(4);
          const stranger = await cluster.run(["list", "--tls-ca", certs.otherCa, "--tls-server-name", "localhost"]);
          expect(stranger.exitCode).toBe(4);
        });
      });
    } finally {
      await rm(certs.dir, { recursive: true, force: true });
    }
  });

  test.skipIf(!openssl)("mutual TLS: servers refuse a client without a certificate and serve one with a certificate from the cluster's CA", async () => {
    const certs = await makeCertificates();
    try {
      const server = ["--tls-cert", certs.cert, "--tls-key", certs.key, "--tls-client-ca", certs.ca, "--tls-ca", certs.ca, "--tls-server-name", "localhost"];
      useTlsClient({ ca: await readFile(certs.ca), serverName: "localhost", clientCert: await readFile(certs.clientCert), clientKey: await readFile(certs.clientKey) });
      await withCluster({ nodes: 2, replication: 2, masterArgs: server, nodeArgs: server }, async (cluster) => {
        await withTempDir(async (dir) => {
          const tls = ["--tls-ca", certs.ca, "--tls-server-name", "localhost"];
          await writeFile(join(dir, "f"), randomBytes(2 * 1024 * 1024));
          const anonymous = await cluster.run(["upload", join(dir, "f"), ...tls]);
          expect(anonymous.exitCode).toBe(4);
          const withCert = [...tls, "--tls-client-cert", certs.clientCert, "--tls-client-key", certs.clientKey];
          const up = await cluster.run(["upload", join(dir, "f"), ...withCert]);
          expect(up.stderr).toBe("");
          expect(up.exitCode).toBe(0);
          expect((await cluster.run(["download", "f", join(dir, "g"), ...withCert])).exitCode).toBe(0);
          expect(await sha256File(join(dir, "g"))).toBe(await sha256File(join(dir, "f")));
        });
      });
    } finally {
      await rm(certs.dir, { recursive: true, force: true });
    }
  });

  test("TLS flags are checked before anything starts", async () => {
    const { runCli } = await import("./harness");
    const half = await runCli(["master", "--port", "0", "--data-dir", "/tmp/never-created-dbx-tls", "--tls-cert", "/etc/hostname"]);
    expect(half.exitCode).toBe(2);
    expect(half.stderr).toMatch(/^error: --tls-cert \/etc\/hostname: not a PEM file\n$/);
    const lonely = await runCli(["list", "--tls-server-name", "x", "--master", "127.0.0.1:1"]);
    expect(lonely.exitCode).toBe(2);
    expect(lonely.stderr).toContain("need --tls-ca");
  });
});
