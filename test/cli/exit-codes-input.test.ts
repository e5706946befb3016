import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CliResult, runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { buildImage } from './image-helpers.js';

// README's exit-code table: 2 is input that is not what it should be; 5 is
// content that failed a check against its digest, size or chunk hashes. A
// malformed oci-layout file, an archive entry outside the layout and a
// --layer tar that is damaged are bad input: nothing failed a check.

function expectExit(r: CliResult, code: number, message: RegExp, what: string): void {
  assert.equal(r.code, code, `${what}: ${r.stderr}${r.stdout}`);
  const line = r.stderr.trim();
  assert.match(line, message, what);
  assert.equal(line.split('\n').length, 1, `${what}: one line: ${line}`);
}

function gnuTar(cwd: string, args: string[]): void {
  const r = spawnSync('tar', args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `tar ${args.join(' ')}: ${r.stderr}`);
}

test('an oci-layout file that is not JSON, or not a JSON object, is invalid input (2)', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 1000 });
  for (const [name, text] of [
    ['notjson', 'not json\n'],
    ['notobject', 'null\n'],
  ] as const) {
    const bad = join(root, name);
    await cp(img.dir, bad, { recursive: true });
    await writeFile(join(bad, 'oci-layout'), text);
    for (const args of [
      ['inspect', `oci:${bad}`],
      ['verify', `oci:${bad}:v1`],
      ['copy', img.location, `oci:${bad}:v2`],
    ]) {
      expectExit(await runCli(args), 2, /oci-layout is not (valid JSON|a JSON object)$/, `${name}: ${args.join(' ')}`);
    }
    const json = await runCli(['verify', '--json', `oci:${bad}:v1`]);
    assert.equal(JSON.parse(json.stdout).error.code, 'INVALID_ARGUMENT', name);
  }
});

test('an oci-archive entry outside the layout is invalid input (2)', async (t) => {
  if (!requireTools(t, 'tar')) return;
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 1000 });
  await writeFile(join(img.dir, 'x'), 'outside\n');
  // GNU tar keeps `..` and a leading `/` with -P; --transform gives the extra entry its name.
  for (const [name, entry] of [
    ['dotdot', '../x'],
    ['absolute', '/x'],
    ['nested', 'blobs/../../x'],
  ] as const) {
    const archive = join(root, `${name}.tar`);
    gnuTar(img.dir, ['-P', '--transform', `s,^x$,${entry},`, '-cf', archive, 'oci-layout', 'index.json', 'blobs', 'x']);
    assert.match(
      spawnSync('tar', ['-tPf', archive], { encoding: 'utf8' }).stdout,
      new RegExp(`^${entry.replace(/\./g, '\\.')}$`, 'm'),
      'the archive holds the entry',
    );
    for (const cmd of ['inspect', 'verify']) {
      expectExit(
        await runCli([cmd, `oci-archive:${archive}`]),
        2,
        new RegExp(`archive entry "${entry.replace(/\./g, '\\.')}" points outside the layout$`),
        `${cmd} ${name}`,
      );
    }
    const json = await runCli(['inspect', '--json', `oci-archive:${archive}`]);
    assert.equal(JSON.parse(json.stdout).error.code, 'INVALID_ARGUMENT', name);
  }
});

test('a --layer tar with a ".." entry or cut short inside an entry is invalid input (2), and nothing is written', async (t) => {
  if (!requireTools(t, 'tar')) return;
  const root = await tempDir(t);
  const src = join(root, 'src');
  await mkdir(join(src, 'etc'), { recursive: true });
  await writeFile(join(src, 'etc', 'big'), Buffer.alloc(300_000, 7));
  await writeFile(join(src, 'x'), 'escape\n');
  const dotdot = join(root, 'dotdot.tar');
  gnuTar(src, ['-P', '--transform', 's,^x$,../x,', '-cf', dotdot, 'etc', 'x']);
  const whole = join(root, 'whole.tar');
  gnuTar(src, ['-cf', whole, 'etc']);
  const cut = join(root, 'cut.tar');
  await writeFile(cut, (await readFile(whole)).subarray(0, 100_000));
  const cases: Array<[string, RegExp]> = [
    [dotdot, /dotdot\.tar: entry "\.\.\/x" has a "\.\." component$/],
    [cut, /cut\.tar: the archive ends in the middle of an entry$/],
  ];
  for (const [file, message] of cases) {
    const out = join(root, 'out');
    expectExit(await runCli(['image', 'build', '--layer', file, '-o', `oci:${out}`]), 2, message, file);
    const json = await runCli(['image', 'build', '--json', '--layer', file, '-o', `oci:${out}`]);
    assert.equal(JSON.parse(json.stdout).error.code, 'INVALID_ARGUMENT', file);
    assert.equal(spawnSync('test', ['-e', out]).status, 1, `${file}: no layout left behind`);
  }
  // The same tar read whole is fine: the cut, not the content, is what fails.
  const ok = await runCli(['image', 'build', '--layer', whole, '-o', `oci:${join(root, 'ok')}`]);
  assert.equal(ok.code, 0, ok.stderr);
});
