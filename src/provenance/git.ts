/**
 * Build provenance from the git repository of a directory: the fields of
 * product_info that name the source (osimage-format.md, "Config blob":
 * `commit_hash`, `commit_date` in RFC 3339, `build_tree_dirty`), the
 * `{git-describe}` placeholder of a product version, and the OCI
 * annotations `org.opencontainers.image.revision`, `.source` and `.created`
 * (image-spec annotations.md). git is run as a program; nothing here
 * depends on the build.
 */
import { execFile } from 'node:child_process';
import { OciError } from '../errors.js';

/** What the repository says about the tree a build is made from. */
export interface GitProvenance {
  /** Full hex object name of HEAD. */
  commitHash: string;
  /** Committer date of HEAD, RFC 3339 in UTC: `2025-05-08T18:26:46+00:00`. */
  commitDate: string;
  /** True when tracked files differ from HEAD (staged or not) or untracked files that are not ignored exist. */
  dirty: boolean;
  /** URL of the `origin` remote with any user name and password removed; undefined without one. */
  remoteUrl?: string;
}

/** Options of the git functions. */
export interface GitOptions {
  /** Directory inside the repository. Default `process.cwd()`. */
  cwd?: string;
  /** Environment for git. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** The placeholder a product version may contain. */
export const gitDescribePlaceholder = '{git-describe}';

/** Runs git; rejects with its first stderr line (never a URL with credentials: callers strip those). */
function git(args: string[], options: GitOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['--no-optional-locks', ...args],
      {
        cwd: options.cwd ?? process.cwd(),
        env: { ...(options.env ?? process.env), GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' },
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (!err) {
          resolve(stdout);
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: unknown };
        if (e.code === 'ENOENT') {
          reject(new OciError('USAGE', 'git is not installed (or not on PATH); it is needed for --git, --annotate-git and {git-describe}'));
          return;
        }
        const line =
          String(stderr)
            .split('\n')
            .map((l) => l.replace(/^(fatal|error):\s*/, '').trim())
            .find(Boolean) ?? e.message;
        reject(Object.assign(new Error(line), { gitArgs: args }));
      },
    );
  });
}

/** Fails with a clear message unless `cwd` is inside a git work tree with at least one commit. */
async function requireRepository(options: GitOptions): Promise<void> {
  const cwd = options.cwd ?? process.cwd();
  try {
    const inside = (await git(['rev-parse', '--is-inside-work-tree'], options)).trim();
    if (inside !== 'true') throw new Error('not inside a work tree');
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw new OciError('USAGE', `${cwd} is not inside a git repository (${(err as Error).message})`, {
      hint: 'run oci-os from the repository the image is built from, or leave out --git, --annotate-git and {git-describe}',
    });
  }
  try {
    await git(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], options);
  } catch {
    throw new OciError('USAGE', `the git repository at ${cwd} has no commit yet`, { hint: 'commit first, or leave out --git' });
  }
}

/** `https://user:token@host/x.git` → `https://host/x.git`; scp-like `git@host:x.git` and paths are kept as they are. */
export function stripUrlCredentials(url: string): string {
  const s = url.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return s;
  try {
    const u = new URL(s);
    if (!u.username && !u.password) return s;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return s.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1');
  }
}

/** Seconds since the epoch → `YYYY-MM-DDTHH:MM:SS+00:00`. */
export function rfc3339Utc(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

/** Reads HEAD, its committer date, whether the tree is dirty and the origin URL. */
export async function readGitProvenance(options: GitOptions = {}): Promise<GitProvenance> {
  await requireRepository(options);
  const [head, date, status] = await Promise.all([
    git(['rev-parse', 'HEAD'], options),
    git(['show', '-s', '--format=%ct', 'HEAD'], options),
    git(['status', '--porcelain', '--untracked-files=normal'], options),
  ]);
  let remoteUrl: string | undefined;
  try {
    remoteUrl = stripUrlCredentials((await git(['remote', 'get-url', 'origin'], options)).trim()) || undefined;
  } catch {
    remoteUrl = undefined; // no origin: no source annotation
  }
  const seconds = Number(date.trim());
  if (!Number.isFinite(seconds)) throw new OciError('INTERNAL', `git printed an unexpected commit date "${date.trim()}"`);
  return {
    commitHash: head.trim(),
    commitDate: rfc3339Utc(seconds),
    dirty: status.trim() !== '',
    ...(remoteUrl ? { remoteUrl } : {}),
  };
}

/** `git describe --tags --always --dirty` of the repository. */
export async function gitDescribe(options: GitOptions = {}): Promise<string> {
  await requireRepository(options);
  return (await git(['describe', '--tags', '--always', '--dirty'], options)).trim();
}

/** Replaces every `{git-describe}` in `value`; runs git only when the placeholder is there. */
export async function expandGitDescribe(value: string, options: GitOptions = {}): Promise<string> {
  if (!value.includes(gitDescribePlaceholder)) return value;
  const d = await gitDescribe(options);
  return value.split(gitDescribePlaceholder).join(d);
}

/** The OCI annotations that tie an image to its source: revision, source (when there is an origin) and created. */
export function gitAnnotations(p: GitProvenance): Record<string, string> {
  return {
    'org.opencontainers.image.revision': p.commitHash,
    ...(p.remoteUrl ? { 'org.opencontainers.image.source': p.remoteUrl } : {}),
    'org.opencontainers.image.created': p.commitDate,
  };
}
