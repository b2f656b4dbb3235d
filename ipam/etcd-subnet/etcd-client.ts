/**
 * The etcd client: the npm `etcd3` package (gRPC), made from the config's
 * endpoints and TLS files. The only module that imports etcd3.
 *
 * etcd3 reads its .proto files from node_modules when it is first evaluated;
 * the single-file executable has no node_modules, so while it loads, reads of
 * those exact files are answered from the embedded copies (etcd3-protos.ts).
 */
import fs from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { EtcdConfig } from './config.ts';
import { ETCD3_PROTOS } from './etcd3-protos.ts';

type Etcd3Module = typeof import('etcd3');
let loaded: Promise<Etcd3Module> | undefined;

/** The embedded proto text for a path etcd3 asks for, when that file is not on disk. */
export function embeddedProtoFor(path: string, exists: (p: string) => boolean = fs.existsSync): string | undefined {
  const m = /[/\\]etcd3[/\\]proto[/\\]([a-z]+\.proto)$/.exec(path);
  if (!m) return undefined;
  const text = ETCD3_PROTOS[m[1] as string];
  return text !== undefined && !exists(path) ? text : undefined;
}

/** Load etcd3 once, serving its .proto files from the executable when they are not on disk. */
export function loadEtcd3(): Promise<Etcd3Module> {
  loaded ??= (async () => {
    const original = fs.readFileSync;
    const patched = (path: fs.PathOrFileDescriptor, ...rest: unknown[]): unknown => {
      const text = typeof path === 'string' ? embeddedProtoFor(path) : undefined;
      if (text !== undefined) return Buffer.from(text, 'utf8');
      return (original as (...a: unknown[]) => unknown)(path, ...rest);
    };
    fs.readFileSync = patched as typeof fs.readFileSync;
    try {
      return await import('etcd3');
    } finally {
      fs.readFileSync = original;
    }
  })();
  return loaded;
}

function readTlsFile(path: string, what: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `ipam.etcd.${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/**
 * A client for the config's endpoints. Fault handling is off (no retries, no
 * circuit breaker): a CNI call must answer within the runtime's timeout, and
 * "try again later" is the runtime's retry.
 */
export async function openEtcd(cfg: EtcdConfig, dialTimeoutMs = 2_000): Promise<Etcd3> {
  const { Etcd3, isRecoverableError } = await loadEtcd3();
  const { noop, retry, handleWhen } = await import('cockatiel');
  const tls = cfg.caFile || cfg.certFile;
  const credentials = tls
    ? {
        rootCertificate: cfg.caFile ? readTlsFile(cfg.caFile, 'caFile') : Buffer.alloc(0),
        ...(cfg.certFile ? { certChain: readTlsFile(cfg.certFile, 'certFile') } : {}),
        ...(cfg.keyFile ? { privateKey: readTlsFile(cfg.keyFile, 'keyFile') } : {}),
      }
    : undefined;
  return new Etcd3({
    hosts: cfg.endpoints,
    dialTimeout: dialTimeoutMs,
    ...(credentials ? { credentials } : {}),
    ...(cfg.serverName ? { grpcOptions: { 'grpc.ssl_target_name_override': cfg.serverName } } : {}),
    // With several endpoints a failed call moves on to the next one, once each.
    faultHandling: { host: () => noop, global: cfg.endpoints.length > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: cfg.endpoints.length - 1 }) : noop },
  });
}

/** True for the errors that mean "etcd cannot be reached right now". */
export function isUnavailable(e: unknown): boolean {
  const name = (e as Error | undefined)?.constructor?.name ?? '';
  const msg = (e as Error | undefined)?.message ?? '';
  return /GRPCUnavailable|GRPCDeadlineExceeded|GRPCConnectFailed|ClientRuntime|BrokenCircuit|Timeout/i.test(name) || /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|No connection established/.test(msg);
}

/** Map an etcd failure to a CNI error: unreachable -> 11 "try again later", naming the endpoints. */
export function etcdError(e: unknown, cfg: EtcdConfig, doing: string): CniError {
  if (e instanceof CniError) return e;
  const msg = (e as Error | undefined)?.message ?? String(e);
  if (isUnavailable(e)) return new CniError(ErrorCode.TryAgainLater, `etcd unreachable at ${cfg.endpoints.join(', ')} while ${doing}: try again later`, msg);
  return new CniError(ErrorCode.Internal, `etcd error at ${cfg.endpoints.join(', ')} while ${doing}`, msg);
}

/** Bound a promise in time (a gRPC call on a dead connection can wait for its deadline). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error(`UNAVAILABLE: ${what}: no answer in ${ms} ms`);
      reject(e);
    }, ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
