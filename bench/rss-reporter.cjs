// Preloaded (--require) into a measured process: writes its peak RSS (bytes) and CPU time (user and
// system, microseconds) to $OCI_OS_RSS_FILE at exit.
// CommonJS, so that preloading it starts nothing (an ES module preload would start libuv's thread pool
// before the CLI's entry can size it).
'use strict';
const { writeFileSync } = require('node:fs');
process.on('exit', () => {
  if (process.env.OCI_OS_RSS_FILE) {
    const u = process.resourceUsage();
    writeFileSync(process.env.OCI_OS_RSS_FILE, `${u.maxRSS * 1024} ${u.userCPUTime} ${u.systemCPUTime}`);
  }
});
