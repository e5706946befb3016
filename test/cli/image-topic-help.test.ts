import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';

// Without a topic entry of its own, oclif shows the first command's summary
// (image build's) as the summary of the whole `image` topic.

test('image --help and the topic list give the image topic its own summary', async () => {
  const ownSummary = 'Container images: build them from directories and tar files, combine them into multi-platform indexes, unpack them.';
  const buildSummary = 'Build a container image from directories and tar files, optionally on a base image.';
  for (const args of [['image', '--help'], ['image']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n\n')[0]!.replace(/\n/g, ' '), ownSummary, args.join(' '));
    assert.ok(!r.stdout.startsWith(buildSummary), `${args.join(' ')}: not image build's summary`);
    assert.match(r.stdout, /^ {2}image build\s+Build a container image/m, 'image build keeps its own summary');
  }
  const top = await runCli(['--help']);
  const topics = top.stdout.slice(top.stdout.indexOf('TOPICS'), top.stdout.indexOf('COMMANDS')).replace(/\s+/g, ' ');
  assert.ok(topics.includes(`image ${ownSummary}`), topics);
});
