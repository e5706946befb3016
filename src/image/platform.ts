/**
 * Image platforms (image-spec image-index.md "platform"): `OS/ARCH[/VARIANT]`
 * checked against the GOOS and GOARCH values the spec refers to.
 */
import { OciError } from '../errors.js';
import type { Platform } from '../oci/descriptor.js';

/** Operating systems the image spec accepts (Go's GOOS values). */
export const knownOs: readonly string[] = [
  'aix',
  'android',
  'darwin',
  'dragonfly',
  'freebsd',
  'hurd',
  'illumos',
  'ios',
  'js',
  'linux',
  'nacl',
  'netbsd',
  'openbsd',
  'plan9',
  'solaris',
  'wasip1',
  'windows',
  'zos',
];
/** Architectures the image spec accepts (Go's GOARCH values). */
export const knownArch: readonly string[] = [
  '386',
  'amd64',
  'amd64p32',
  'arm',
  'arm64',
  'arm64be',
  'armbe',
  'loong64',
  'mips',
  'mips64',
  'mips64le',
  'mips64p32',
  'mips64p32le',
  'mipsle',
  'ppc',
  'ppc64',
  'ppc64le',
  'riscv',
  'riscv64',
  's390',
  's390x',
  'sparc',
  'sparc64',
  'wasm',
];

/** The platform used when none is given. */
export const defaultPlatform: Platform = { architecture: 'amd64', os: 'linux' };

/**
 * Architecture names as OS vendors and `uname -m` spell them, mapped to the
 * Go names the image spec uses (`x86_64` → `amd64`, `aarch64` → `arm64`).
 */
const archAliases: Readonly<Record<string, string>> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  x64: 'amd64',
  aarch64: 'arm64',
  i386: '386',
  i486: '386',
  i586: '386',
  i686: '386',
  armv7l: 'arm',
  armhf: 'arm',
  ppc64el: 'ppc64le',
  riscv64gc: 'riscv64',
  loongarch64: 'loong64',
};

/** The Go name of an architecture (`x86_64` → `amd64`), or undefined for a name that is not one. */
export function normalizeArchitecture(name: string): string | undefined {
  const n = name.toLowerCase();
  const arch = archAliases[n] ?? n;
  return knownArch.includes(arch) ? arch : undefined;
}

/**
 * The platform of the machine this runs on, as `pull`, `extract` and
 * `image unpack` choose from an index by default: Linux (as skopeo and
 * docker choose on macOS too) and Node's architecture in Go's names.
 */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', ia32: '386', ppc64: 'ppc64le' };
  const architecture = arch[process.arch] ?? process.arch;
  if (architecture === 'arm') {
    const v = (process.config.variables as { arm_version?: string }).arm_version;
    return v ? { architecture, os: 'linux', variant: `v${v}` } : { architecture, os: 'linux' };
  }
  return { architecture, os: 'linux' };
}

/** Options of {@link parsePlatform}. */
export interface ParsePlatformOptions {
  /**
   * Accept any variant made of `[A-Za-z0-9._-]` (an OS image's `debug`
   * build), not only CPU variants such as `v7` or `v8.2`.
   */
  anyVariant?: boolean;
}

/**
 * Parses `OS/ARCH[/VARIANT]`; throws INVALID_ARGUMENT naming what is wrong.
 * ARCH may be spelled as `uname -m` does (`x86_64`, `aarch64`).
 */
export function parsePlatform(text: string, options: ParsePlatformOptions = {}): Platform {
  const parts = text.trim().split('/');
  const [os, arch, variant] = parts;
  const architecture = arch ? (normalizeArchitecture(arch) ?? arch) : arch;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture || variant === '') {
    throw new OciError('INVALID_ARGUMENT', `invalid platform "${text}": use OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm/v7`);
  }
  if (!knownOs.includes(os)) {
    throw new OciError('INVALID_ARGUMENT', `unknown platform OS "${os}" in "${text}": use one of ${knownOs.join(', ')}`);
  }
  if (!knownArch.includes(architecture)) {
    throw new OciError('INVALID_ARGUMENT', `unknown platform architecture "${architecture}" in "${text}": use one of ${knownArch.join(', ')}`);
  }
  if (variant !== undefined && options.anyVariant) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(variant)) {
      throw new OciError(
        'INVALID_ARGUMENT',
        `invalid platform variant "${variant}" in "${text}": a variant is letters, digits, ".", "_" and "-" (e.g. v8 or debug)`,
      );
    }
  } else if (variant !== undefined && !/^v[0-9]+(\.[0-9]+)?$/.test(variant)) {
    throw new OciError('INVALID_ARGUMENT', `invalid platform variant "${variant}" in "${text}": variants look like v7, v8 or v8.2`);
  }
  return variant ? { architecture, os, variant } : { architecture, os };
}

/** `OS/ARCH[/VARIANT]`. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/**
 * Whether an image's platform satisfies a wanted one: OS and architecture
 * equal, and the variant equal when the wanted platform names one.
 */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  return want.variant === undefined || have.variant === want.variant;
}

/** Whether two platforms are the same OS, architecture and variant (no variant equals no variant only). */
export function samePlatform(a: Platform | undefined, b: Platform): boolean {
  return !!a && a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/**
 * The platform an OS image's product `variant` names: its first
 * `-`-separated part is the architecture (osimage-format.md), in Go's names;
 * what follows becomes the platform variant, so `x86_64` is linux/amd64 and
 * `x86_64-debug` is linux/amd64/debug. Undefined when the first part is no
 * known architecture.
 */
export function platformFromProductVariant(variant: string | undefined): Platform | undefined {
  if (!variant) return undefined;
  const [first, ...rest] = variant.split('-');
  const architecture = first ? normalizeArchitecture(first) : undefined;
  if (!architecture) return undefined;
  const v = rest.join('-');
  return v && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(v) ? { architecture, os: 'linux', variant: v } : { architecture, os: 'linux' };
}
