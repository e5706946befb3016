/**
 * Image platforms (image-spec image-index.md "platform"): `OS/ARCH[/VARIANT]`
 * checked against the GOOS and GOARCH values the spec refers to.
 */
import { OciError } from '../errors.js';
import type { Platform } from '../oci/descriptor.js';

/** Operating systems the image spec accepts (Go's GOOS values). */
export const knownOs: readonly string[] = [
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux',
  'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos',
];
/** Architectures the image spec accepts (Go's GOARCH values). */
export const knownArch: readonly string[] = [
  '386', 'amd64', 'amd64p32', 'arm', 'arm64', 'arm64be', 'armbe', 'loong64', 'mips', 'mips64', 'mips64le',
  'mips64p32', 'mips64p32le', 'mipsle', 'ppc', 'ppc64', 'ppc64le', 'riscv', 'riscv64', 's390', 's390x',
  'sparc', 'sparc64', 'wasm',
];

/** The platform used when none is given. */
export const defaultPlatform: Platform = { architecture: 'amd64', os: 'linux' };

/** Parses `OS/ARCH[/VARIANT]`; throws INVALID_ARGUMENT naming what is wrong. */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().split('/');
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture || variant === '') {
    throw new OciError('INVALID_ARGUMENT', `invalid platform "${text}": use OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm/v7`);
  }
  if (!knownOs.includes(os)) {
    throw new OciError('INVALID_ARGUMENT', `unknown platform OS "${os}" in "${text}": use one of ${knownOs.join(', ')}`);
  }
  if (!knownArch.includes(architecture)) {
    throw new OciError('INVALID_ARGUMENT', `unknown platform architecture "${architecture}" in "${text}": use one of ${knownArch.join(', ')}`);
  }
  if (variant !== undefined && !/^v[0-9]+(\.[0-9]+)?$/.test(variant)) {
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
