/** The fault-injecting proxy's rules, hooks, log and handle (fault-proxy.ts). */
import type { IncomingMessage } from 'node:http';

/** What a rule or hook sees of a request before it is forwarded. */
export interface FaultRequestInfo {
  /** Which listener took it: `main` (`proxy.url`) or `other` (`proxy.otherUrl`, 127.0.0.2). */
  listener: 'main' | 'other';
  method: string;
  /** Path without the query. */
  path: string;
  /** Query string without `?` ('' when none). */
  query: string;
  headers: IncomingMessage['headers'];
  /** Parsed `Content-Length`, undefined when absent (e.g. chunked). */
  contentLength?: number;
}

/** What the proxy does with a matched request. */
export type FaultAction =
  /** Forward as usual (a hook's way to say "no fault"). */
  | { type: 'pass' }
  /**
   * Forward, but after `afterBytes` bytes of the request body (default 0)
   * abort the upstream request and destroy the client socket (TCP RST when
   * possible) without answering. The upstream sees a partial upload. A body
   * shorter than `afterBytes` is forwarded whole, the upstream's answer is
   * dropped and both sides are cut (the "lost answer" case).
   */
  | { type: 'reset'; afterBytes?: number }
  /**
   * Forward, and destroy the client socket after `afterBytes` bytes of the
   * response body were sent (headers already went out).
   */
  | { type: 'resetResponse'; afterBytes?: number }
  /**
   * Forward, and after `afterBytes` bytes of the response body were sent,
   * send nothing more while keeping the connection open (a registry that
   * hangs mid-download) until the client goes or the proxy stops.
   */
  | { type: 'stallResponse'; afterBytes?: number }
  /**
   * Answer without forwarding. The request body is read and discarded first
   * unless `early` is true (then the answer goes out at once).
   */
  | { type: 'respond'; status: number; headers?: Record<string, string>; body?: string | Buffer | object; early?: boolean }
  /**
   * Answer 401 with the `WWW-Authenticate` challenge the upstream gives for
   * `GET /v2/` (fetched once), as if the token had expired. For Bearer
   * challenges a `scope` for the request's repository is added unless
   * `withScope` is false. Not forwarded.
   */
  | { type: 'unauthorized'; withScope?: boolean }
  /**
   * Forward, then change the answer: `status` replaces the status when the
   * upstream answered `ifStatus` (any when unset); `removeHeaders` are
   * dropped; `setHeaders` are set.
   */
  | { type: 'rewrite'; ifStatus?: number; status?: number; removeHeaders?: string[]; setHeaders?: Record<string, string> }
  /** Wait `ms` milliseconds, then forward. */
  | { type: 'delay'; ms: number };

/** A fault rule; see {@link FaultProxy.addRule}. */
export interface FaultRule {
  /** HTTP method to match (case-insensitive); any when unset. */
  method?: string;
  /** Regex tested against the path (no query); any when unset. */
  path?: RegExp;
  /** Extra condition on the request. */
  when?: (req: FaultRequestInfo) => boolean;
  /** Listener to match: `main`, `other` or `any` (default). */
  listener?: 'main' | 'other' | 'any';
  /** Matching requests to let through before the rule fires. Default 0. */
  skip?: number;
  /** Fire first at the nth matching request (1-based); same as `skip: nth - 1`. */
  nth?: number;
  /** How many times the rule fires; default 1; `Infinity` for always. */
  times?: number;
  /** What to do. */
  action: FaultAction;
}

/** One request the proxy saw. */
export interface FaultLogEntry {
  listener: 'main' | 'other';
  method: string;
  path: string;
  query: string;
  /** Status sent to the client; 0 when the connection was reset or the upstream failed. */
  status: number;
  /** Request body bytes received from the client. */
  requestBodyBytes: number;
  /** Whether the request carried an `Authorization` header (its value is never kept). */
  hadAuthorization: boolean;
  /** The `Host` header the client sent. */
  host?: string;
  contentLength?: number;
  contentRange?: string;
  /** Type of the fault action applied, if any. */
  fault?: FaultAction['type'];
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Hook asked before the rules for every request; return an action, or undefined to go on to the rules. */
  onRequest?: (req: FaultRequestInfo) => FaultAction | undefined;
  /** How absolute `Location` answers are rewritten; see {@link FaultProxy.locationMode}. Default `proxy`. */
  locationMode?: LocationMode;
  /** PEM file of a CA to trust when the target is https. */
  upstreamCaFile?: string;
  /** Start the second listener on 127.0.0.2. Default true. */
  otherListener?: boolean;
}

/**
 * `proxy`: target origin → the origin of the listener that answered;
 * `relative`: absolute Locations become path+query;
 * `other`: Locations point at the second listener (`127.0.0.2`).
 */
export type LocationMode = 'proxy' | 'relative' | 'other';

/** A running fault-injecting reverse proxy made by {@link startFaultProxy}. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.2:PORT` (second listener), when started. */
  otherUrl?: string;
  /** `127.0.0.2:PORT`, when started. */
  otherHost?: string;
  /** Requests to the main listener, in arrival order. */
  log: FaultLogEntry[];
  /** TCP connections the main listener accepted (reset by clearLog). */
  connections: number;
  /** Requests to the second listener, in arrival order. */
  otherLog: FaultLogEntry[];
  /** Current Location rewriting; may be changed at any time. */
  locationMode: LocationMode;
  /** Current hook; may be changed at any time. */
  onRequest?: (req: FaultRequestInfo) => FaultAction | undefined;
  /**
   * Adds rules. Every rule counts every request it matches; the first rule
   * (in insertion order) that has skipped enough matches and still has
   * `times` left fires.
   */
  addRule(...rules: FaultRule[]): void;
  /** Removes every rule. */
  clearRules(): void;
  /** Empties both logs. */
  clearLog(): void;
  /** How many times each rule fired, in insertion order. */
  fired(): number[];
  /** Closes both listeners and every connection. */
  stop(): Promise<void>;
}
