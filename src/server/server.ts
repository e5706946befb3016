/**
 * Starting and stopping the embedded registry on a TCP address
 * (`oci-os registry serve`). Tests start it in-process on port 0.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OciError } from '../errors.js';
import { createRegistryHandler, type RegistryHandlerOptions } from './handler.js';

/** Options of {@link startRegistryServer}. */
export interface RegistryServerOptions extends RegistryHandlerOptions {
  /** Address to listen on; default `127.0.0.1`. */
  host?: string;
  /** TCP port; default 0 (an ephemeral port, reported in the result). */
  port?: number;
  /** Time a client has to send the request headers; default 60 s. */
  headersTimeoutMs?: number;
  /** A connection with no bytes in either direction for this long is closed; default 5 minutes. */
  idleTimeoutMs?: number;
}

/** A running registry. */
export interface RunningRegistry {
  /** Base URL, e.g. `http://127.0.0.1:5000` (no trailing slash). */
  url: string;
  /** `host:port` as used in image references, e.g. `127.0.0.1:5000`. */
  address: string;
  host: string;
  port: number;
  server: Server;
  /** Stops listening and closes every open connection. */
  close(): Promise<void>;
}

/** Default {@link RegistryServerOptions.headersTimeoutMs}. */
export const defaultHeadersTimeoutMs = 60 * 1000;
/** Default {@link RegistryServerOptions.idleTimeoutMs}. */
export const defaultIdleTimeoutMs = 5 * 60 * 1000;

/** The listen address of `oci-os registry serve` when none is given. */
export const defaultListenAddress = '127.0.0.1:5000';

/**
 * Parses `host:port`, `[v6]:port` or `:port` (host 127.0.0.1); throws
 * INVALID_ARGUMENT otherwise.
 */
export function parseListenAddress(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new OciError('INVALID_ARGUMENT', `invalid listen address "${s}": expected HOST:PORT, e.g. ${defaultListenAddress}`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** Starts the registry and resolves once it listens. */
export async function startRegistryServer(options: RegistryServerOptions): Promise<RunningRegistry> {
  const handler = await createRegistryHandler(options);
  // No cap on the whole request, as a large blob over a slow link may take
  // hours; a stalled client is caught by the idle timeout instead (on the
  // socket, so it is reset by every byte received or sent).
  const server = createServer({ requestTimeout: 0, headersTimeout: options.headersTimeoutMs || defaultHeadersTimeoutMs }, handler);
  server.setTimeout(options.idleTimeoutMs || defaultIdleTimeoutMs);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new OciError('INVALID_ARGUMENT', `cannot listen on ${host}:${options.port ?? 0}: ${err.code ?? err.message}`, { cause: err }));
    });
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${hostPart}:${port}`,
    address: `${hostPart}:${port}`,
    host,
    port,
    server,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await handler.close?.();
    },
  };
}
