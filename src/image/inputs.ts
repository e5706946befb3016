/**
 * Turning what a user typed (command-line values, the environment) into
 * build options, with one clear line for every mistake. Kept apart from
 * the CLI framework so it can be tested and reused.
 */

import { OciError } from '../errors.js';
import { jsonMap } from '../oci/json.js';
import { type LayerCompression, resolveCompression } from './compress.js';
import { type ConfigOverrides, parseCommand, parseKeyValue, parsePort, parseStopSignal } from './config.js';
import { checkMaxLayers } from './layering/build-layers.js';
import { compileExcludes, parseOwner, parseSourceDateEpoch } from './normalize.js';
import { parsePlatform } from './platform.js';
import type { ImageBuildToOptions } from './publish.js';

/** Raw values of `image build`. */
export interface ImageBuildInputs {
  rootfs?: string;
  layer?: string[];
  base?: string;
  entrypoint?: string;
  cmd?: string;
  env?: string[];
  workdir?: string;
  user?: string;
  expose?: string[];
  volume?: string[];
  label?: string[];
  stopSignal?: string;
  platform?: string;
  annotation?: string[];
  layerCompression?: string;
  compressionLevel?: number;
  sourceDateEpoch?: string;
  owner?: string;
  exclude?: string[];
  /** `inputs` (default: one layer per --rootfs/--layer) or `components`. */
  layering?: string;
  maxLayers?: number;
  previous?: string;
}

/** Parses `K=V` values into ordered pairs. */
export function keyValues(values: string[] | undefined, flag: string): Array<[string, string]> {
  return (values ?? []).map((v) => parseKeyValue(v, flag));
}

/**
 * Build options from raw values; SOURCE_DATE_EPOCH comes from the flag,
 * else from `env.SOURCE_DATE_EPOCH` (an empty variable counts as unset).
 */
export function buildOptionsFromInputs(v: ImageBuildInputs, env: NodeJS.ProcessEnv = process.env): ImageBuildToOptions {
  const layers = [...(v.rootfs !== undefined ? [v.rootfs] : []), ...(v.layer ?? [])];
  if (layers.length === 0 && !v.base) throw new OciError('USAGE', 'nothing to build: give --rootfs DIR, --layer PATH or --base IMAGE');
  if (layers.some((l) => l === '')) throw new OciError('USAGE', '--rootfs and --layer need a path');
  const overrides: ConfigOverrides = {};
  if (v.entrypoint !== undefined) overrides.entrypoint = parseCommand(v.entrypoint, '--entrypoint');
  if (v.cmd !== undefined) overrides.cmd = parseCommand(v.cmd, '--cmd');
  if (v.env?.length) overrides.env = keyValues(v.env, '--env');
  if (v.workdir !== undefined) overrides.workdir = v.workdir;
  if (v.user !== undefined) overrides.user = v.user;
  if (v.expose?.length) overrides.expose = v.expose.map(parsePort);
  if (v.volume?.length) {
    overrides.volumes = v.volume.map((p) => {
      if (!p.startsWith('/')) throw new OciError('INVALID_ARGUMENT', `invalid --volume "${p}": use an absolute path inside the container, e.g. /data`);
      return p;
    });
  }
  if (v.label?.length) overrides.labels = keyValues(v.label, '--label');
  if (v.stopSignal !== undefined) overrides.stopSignal = parseStopSignal(v.stopSignal);
  const epochText = v.sourceDateEpoch ?? (env.SOURCE_DATE_EPOCH ? env.SOURCE_DATE_EPOCH : undefined);
  const sourceDateEpoch =
    epochText === undefined ? undefined : parseSourceDateEpoch(epochText, v.sourceDateEpoch !== undefined ? '--source-date-epoch' : 'SOURCE_DATE_EPOCH');
  const { compression, level } = resolveCompression({ compression: (v.layerCompression ?? 'gzip') as LayerCompression, level: v.compressionLevel });
  const annotations = jsonMap(keyValues(v.annotation, '--annotation'));
  const layering = layeringFromInputs(v);
  return {
    layers,
    base: v.base,
    platform: v.platform !== undefined ? parsePlatform(v.platform) : undefined,
    overrides,
    annotations,
    compression,
    level,
    ...(layering && { layering }),
    normalize: {
      sourceDateEpoch,
      owner: v.owner !== undefined ? parseOwner(v.owner) : undefined,
      exclude: compileExcludes(v.exclude),
    },
  };
}

/** `--layering`, `--max-layers` and `--previous`: undefined for the default, one layer per input. */
function layeringFromInputs(v: ImageBuildInputs): ImageBuildToOptions['layering'] {
  const mode = v.layering ?? 'inputs';
  if (mode !== 'inputs' && mode !== 'components') throw new OciError('INVALID_ARGUMENT', `invalid --layering "${mode}": use inputs or components`);
  if (mode === 'inputs') {
    if (v.maxLayers !== undefined || v.previous !== undefined) throw new OciError('USAGE', '--max-layers and --previous go with --layering components');
    return undefined;
  }
  if (v.rootfs === undefined) throw new OciError('USAGE', '--layering components layers the --rootfs directory: give --rootfs DIR');
  if (v.previous === '') throw new OciError('USAGE', '--previous needs an image: a registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]');
  return { mode, maxLayers: checkMaxLayers(v.maxLayers), ...(v.previous !== undefined && { previous: v.previous }) };
}
