// Preloaded into a measured process: writes its peak RSS (bytes) to $OCI_OS_RSS_FILE at exit.
import { writeFileSync } from 'node:fs';
process.on('exit', () => {
  if (process.env.OCI_OS_RSS_FILE) writeFileSync(process.env.OCI_OS_RSS_FILE, String(process.resourceUsage().maxRSS * 1024));
});
