'use strict';
// A command ends when the promise it awaits settles. One that can never
// settle (a stream or request whose failure nobody passed on) leaves Node.js
// nothing to run, and the process then exits with code 0 and not a word, as
// if the command had done its work. This turns that into a failure that
// says so: one line on stderr, or the --json error object on stdout.

/** Makes the process fail when it runs out of work while `done` has not settled. */
function exitIfUnsettled(done, argv) {
  let settled = false;
  const mark = () => {
    settled = true;
  };
  done.then(mark, mark);
  process.once('beforeExit', () => {
    if (settled) return;
    const message = 'internal error: the command stopped before it finished, waiting for something that can no longer happen';
    process.exitCode = 1;
    if (argv.includes('--json')) {
      process.stdout.write(`${JSON.stringify({ error: { code: 'INTERNAL', message }, exitCode: 1 }, null, 2)}\n`);
    } else {
      process.stderr.write(`oci-os: error: ${message}\n`);
    }
  });
}

module.exports = { exitIfUnsettled };
