/**
 * Size caps for content read whole into memory, one per kind, so every
 * reader (registry client, layout, copy, image and OS image readers)
 * refuses the same things.
 */

/**
 * Largest manifest or index read, pushed or copied: 4 MiB, the default
 * limit of CNCF distribution (the reference registry) and the size the
 * distribution-spec says registries should accept at least. The built-in
 * registry takes the same by default.
 */
export const MAX_MANIFEST_BYTES = 4 << 20;

/** Largest container image config read (configs carry history and environment, and grow past manifests). */
export const MAX_CONFIG_BYTES = 16 << 20;
