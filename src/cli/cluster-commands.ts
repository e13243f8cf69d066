/** `dropbox cluster …` and the seed's `start | stop | restart` verbs. */
import type { CAC } from "cac";

/** Registers the cluster commands; `run` receives the command's exit-code promise. */
export function registerClusterCommands(_cli: CAC, _run: (load: () => Promise<number>) => void, _argv: string[]): void {}
