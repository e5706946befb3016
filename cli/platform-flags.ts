/** `--platform` and `--all`: choosing one image of an index, the same way in every command. */
import { Flags } from '@oclif/core';
import { OciError } from '../src/errors.js';
import { parsePlatform } from '../src/image/platform.js';
import type { Platform } from '../src/oci/descriptor.js';
import type { FlagValues } from './base.js';

/** `--platform OS/ARCH[/VARIANT]`; `what` says what the command does with the chosen image and what it does without the flag. */
export const platformFlag = (what: string) => ({
  platform: Flags.string({ description: what, helpValue: 'OS/ARCH[/VARIANT]' }),
});

/** `--all`: every image of an index (for commands whose default already is everything, it says so explicitly). */
export const allFlag = (what: string) => ({
  all: Flags.boolean({ description: what, exclusive: ['platform'] }),
});

/** The platform asked for, parsed (any variant: an OS image's `debug` build is chosen as linux/amd64/debug). */
export function platformFromFlags(flags: Partial<FlagValues<ReturnType<typeof platformFlag> & ReturnType<typeof allFlag>>>): Platform | undefined {
  if (flags.platform !== undefined && flags.all) throw new OciError('USAGE', 'give only one of --platform, --all');
  return flags.platform !== undefined ? parsePlatform(flags.platform, { anyVariant: true }) : undefined;
}
