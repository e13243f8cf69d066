/** Finding out, before anything starts, whether the ports a cluster needs are free. */
import { createServer } from "node:net";

/** True when nothing can bind `host:port` because something else holds it. */
export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "EADDRINUSE" || err.code === "EACCES"));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(false)));
  });
}

/** The first port of `ports` that is taken, or undefined when all are free. */
export async function firstBusyPort(host: string, ports: number[]): Promise<number | undefined> {
  const busy = await Promise.all(ports.map((port) => portInUse(host, port)));
  const index = busy.indexOf(true);
  return index < 0 ? undefined : ports[index];
}
