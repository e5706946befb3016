#!/usr/bin/env node
import module from 'node:module';

// Node.js 22.1 and newer keep compiled code between runs: a faster start for every command.
module.enableCompileCache?.();
const { execute } = await import('@oclif/core');

await execute({ dir: import.meta.url });
