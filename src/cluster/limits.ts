/** Every limit of the cluster supervisor, named with its unit, each with the reason for its value. */

/** Default node count: one more than the default replication, so one node can die without blocking uploads. */
export const DEFAULT_NODE_COUNT = 3;
/** Most nodes one supervisor runs: each is a full process, and a laptop has a handful of cores. */
export const MAX_NODE_COUNT = 64;
/** Default first port: the master's, as in the seed; nodes take the following ones. */
export const DEFAULT_BASE_PORT = 9000;
/** Default state and data directory, relative to the working directory, so each project gets its own cluster. */
export const DEFAULT_DATA_DIR = ".dropbox";
/** Every child binds here: a local cluster is for this machine only. */
export const CLUSTER_HOST = "127.0.0.1";

/** How long `up` waits for the master to serve and every node to be alive before giving up. */
export const DEFAULT_READY_TIMEOUT_MS = 15_000;
/** How often readiness is probed: short, because `up` should return within a second. */
export const READY_POLL_INTERVAL_MS = 25;
/** Deadline of one health or status probe: loopback answers in well under this. */
export const PROBE_TIMEOUT_MS = 500;
/** Extra time `up` gives a detached supervisor past the ready deadline to report its own verdict. */
export const SUPERVISOR_VERDICT_MARGIN_MS = 5_000;
/** How often a watcher in another process re-reads the state file. */
export const STATE_POLL_INTERVAL_MS = 25;

/** First delay before restarting a child that died. */
export const RESTART_BACKOFF_INITIAL_MS = 100;
/** Longest delay between restarts: a crash loop costs at most one start per this period. */
export const RESTART_BACKOFF_MAX_MS = 10_000;
/** A child that stayed up this long is healthy again: its next crash restarts after the initial delay. */
export const RESTART_BACKOFF_RESET_AFTER_MS = 30_000;
/** Window over which restarts are counted to spot a crash loop. */
export const RESTART_WINDOW_MS = 60_000;
/** Restarts within the window after which a child is marked failed and left down. */
export const MAX_RESTARTS_IN_WINDOW = 5;

/** Time a child gets after SIGTERM to stop cleanly before SIGKILL. */
export const STOP_GRACE_MS = 5_000;
/** How often a stopping process is checked for being gone. */
export const STOP_POLL_INTERVAL_MS = 20;
/** Lines of a failed child's log printed with the error. */
export const FAILURE_LOG_LINES = 15;
/** Default lines printed by `cluster logs`. */
export const DEFAULT_LOG_LINES = 50;
/** How often `cluster logs -f` looks for new bytes. */
export const LOG_FOLLOW_INTERVAL_MS = 200;

if (RESTART_BACKOFF_MAX_MS < RESTART_BACKOFF_INITIAL_MS) throw new Error("cluster limits: the backoff cap must be at least the first delay");
if (RESTART_BACKOFF_RESET_AFTER_MS <= RESTART_BACKOFF_MAX_MS) throw new Error("cluster limits: a child must stay up longer than the longest backoff to count as healthy");
if (DEFAULT_BASE_PORT + MAX_NODE_COUNT > 65535) throw new Error("cluster limits: default ports must fit");
