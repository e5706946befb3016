/**
 * The image configuration (image-spec config.md): defaults inherited from
 * a base image and overridden by flags, `rootfs.diff_ids` and `history`,
 * serialized with the key order of the spec's Go types so equal inputs give
 * equal digests. `created` and history timestamps come only from
 * SOURCE_DATE_EPOCH and are omitted without it.
 */
import { OciError } from '../errors.js';
import type { Platform } from '../oci/descriptor.js';
import { canonicalJson } from '../oci/json.js';

/** The execution parameters (`config` in config.md), as the spec's Go type names them. */
export interface ExecConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  /** Other keys a base image carries (Healthcheck, Shell, ...), kept as they are. */
  [other: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** An image configuration. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  config?: ExecConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
}

/** Changes the flags make to the inherited execution parameters. Undefined means "inherit". */
export interface ConfigOverrides {
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  env?: Array<[string, string]>;
  workdir?: string;
  user?: string;
  expose?: string[];
  volumes?: string[];
  labels?: Array<[string, string]>;
  stopSignal?: string;
}

/** Parses `KEY=VALUE` (the key non-empty, no `=` in it); throws INVALID_ARGUMENT naming the flag. */
export function parseKeyValue(text: string, flag: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new OciError('INVALID_ARGUMENT', `invalid ${flag} "${text}": use KEY=VALUE`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/**
 * Parses `--entrypoint`/`--cmd`: a JSON array of strings (exec form), an
 * empty string (clears it), or a shell string run with `/bin/sh -c`.
 */
export function parseCommand(text: string, flag: string): string[] | null {
  const t = text.trim();
  if (t === '') return null;
  if (t.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch {
      throw new OciError('INVALID_ARGUMENT', `invalid ${flag} ${text}: it starts with "[" but is not a JSON array; write ["prog","arg"] or a shell command`);
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      throw new OciError('INVALID_ARGUMENT', `invalid ${flag} ${text}: a JSON array of strings is needed`);
    }
    return v as string[];
  }
  return ['/bin/sh', '-c', text];
}

/** Normalizes `PORT[/PROTO]` to the config's `PORT/PROTO` key. */
export function parsePort(text: string): string {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(text.trim());
  if (!m || Number(m[1]) > 65535 || (m[2] !== undefined && Number(m[2]) > 65535)) {
    throw new OciError('INVALID_ARGUMENT', `invalid --expose "${text}": use PORT[/tcp|udp|sctp], e.g. 8080/tcp`);
  }
  return `${m[1]}${m[2] ? `-${m[2]}` : ''}/${(m[3] ?? 'tcp').toLowerCase()}`;
}

/** Validates a stop signal (`SIGTERM`, `TERM` or a number). */
export function parseStopSignal(text: string): string {
  if (!/^(SIG)?[A-Z][A-Z0-9+-]*$|^\d{1,2}$/.test(text.trim())) {
    throw new OciError('INVALID_ARGUMENT', `invalid --stop-signal "${text}": use a signal name such as SIGTERM, or its number`);
  }
  return text.trim();
}

const set = (keys: string[]) => Object.fromEntries(keys.sort().map((k) => [k, {}])) as Record<string, Record<string, never>>;

/**
 * The execution parameters of the new image: the base's, with each flag
 * replacing (user, workdir, stop signal, entrypoint, cmd) or adding to
 * (env by name, labels by key, ports, volumes) what it inherits. A new
 * entrypoint drops the inherited cmd unless a cmd is given too, as a
 * Dockerfile ENTRYPOINT does.
 */
export function mergeExecConfig(base: ExecConfig | undefined, o: ConfigOverrides): ExecConfig | undefined {
  const c: ExecConfig = { ...(base ?? {}) };
  if (o.user !== undefined) c.User = o.user;
  if (o.expose?.length) c.ExposedPorts = set([...new Set([...Object.keys(c.ExposedPorts ?? {}), ...o.expose])]);
  if (o.env?.length) {
    const env = [...(c.Env ?? [])];
    for (const [k, v] of o.env) {
      const i = env.findIndex((e) => e === k || e.startsWith(`${k}=`));
      if (i >= 0) env[i] = `${k}=${v}`;
      else env.push(`${k}=${v}`);
    }
    c.Env = env;
  }
  if (o.entrypoint !== undefined) {
    c.Entrypoint = o.entrypoint;
    if (o.cmd === undefined) c.Cmd = null;
  }
  if (o.cmd !== undefined) c.Cmd = o.cmd;
  if (o.volumes?.length) c.Volumes = set([...new Set([...Object.keys(c.Volumes ?? {}), ...o.volumes])]);
  if (o.workdir !== undefined) c.WorkingDir = o.workdir;
  if (o.labels?.length) {
    const labels = { ...(c.Labels ?? {}) };
    for (const [k, v] of o.labels) labels[k] = v;
    c.Labels = Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  if (o.stopSignal !== undefined) c.StopSignal = o.stopSignal;
  if (c.Entrypoint === null) delete c.Entrypoint;
  if (c.Cmd === null) delete c.Cmd;
  return Object.keys(c).length === 0 ? undefined : c;
}

const execOrder = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal'];

function orderExec(c: ExecConfig): ExecConfig {
  const out: Record<string, unknown> = {};
  for (const k of execOrder) if (c[k] !== undefined) out[k] = c[k];
  for (const k of Object.keys(c).sort()) if (!(k in out) && c[k] !== undefined) out[k] = c[k];
  return out as ExecConfig;
}

/** RFC 3339 (UTC, whole seconds) of SOURCE_DATE_EPOCH. */
export function epochTimestamp(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Serializes a config in the spec's key order (canonical JSON). */
export function serializeConfig(c: ImageConfig): Buffer {
  const out: Record<string, unknown> = {};
  if (c.created !== undefined) out.created = c.created;
  if (c.author !== undefined) out.author = c.author;
  out.architecture = c.architecture;
  out.os = c.os;
  if (c['os.version'] !== undefined) out['os.version'] = c['os.version'];
  if (c['os.features'] !== undefined) out['os.features'] = c['os.features'];
  if (c.variant !== undefined) out.variant = c.variant;
  if (c.config !== undefined) out.config = orderExec(c.config);
  out.rootfs = { type: 'layers', diff_ids: c.rootfs.diff_ids };
  if (c.history?.length) {
    out.history = c.history.map((h) => {
      const e: Record<string, unknown> = {};
      for (const k of ['created', 'created_by', 'author', 'comment', 'empty_layer'] as const) if (h[k] !== undefined) e[k] = h[k];
      return e;
    });
  }
  return canonicalJson(out);
}

/** Reads what matters of a base image's config; throws INVALID_FORMAT when it is not one. */
export function parseBaseConfig(bytes: Buffer, what: string): ImageConfig {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new OciError('INVALID_FORMAT', `${what}: the image config is not JSON`);
  }
  const rootfs = v.rootfs as { diff_ids?: unknown } | undefined;
  if (typeof v.os !== 'string' || typeof v.architecture !== 'string' || !Array.isArray(rootfs?.diff_ids)) {
    throw new OciError('INVALID_FORMAT', `${what}: the image config lacks os, architecture or rootfs.diff_ids`);
  }
  const c: ImageConfig = {
    architecture: v.architecture,
    os: v.os,
    rootfs: { type: 'layers', diff_ids: rootfs.diff_ids as string[] },
  };
  if (typeof v.variant === 'string') c.variant = v.variant;
  if (typeof v['os.version'] === 'string') c['os.version'] = v['os.version'];
  if (Array.isArray(v['os.features'])) c['os.features'] = v['os.features'] as string[];
  if (typeof v.author === 'string') c.author = v.author;
  if (v.config && typeof v.config === 'object') c.config = v.config as ExecConfig;
  if (Array.isArray(v.history)) c.history = v.history as HistoryEntry[];
  if (typeof v.created === 'string') c.created = v.created;
  return c;
}

/** The platform an image config declares. */
export function configPlatform(c: Pick<ImageConfig, 'os' | 'architecture' | 'variant' | 'os.version' | 'os.features'>): Platform {
  const p: Platform = { architecture: c.architecture, os: c.os };
  if (c['os.version']) p['os.version'] = c['os.version'];
  if (c['os.features']?.length) p['os.features'] = c['os.features'];
  if (c.variant) p.variant = c.variant;
  return p;
}
