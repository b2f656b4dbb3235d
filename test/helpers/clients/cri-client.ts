/**
 * A minimal CRI client (runtime.v1) over containerd's unix socket, the way
 * the kubelet talks to it: @grpc/grpc-js with the hand-written proto subset
 * in cri-runtime-v1.proto. Each method is one unary call returning a promise.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';

const PROTO = join(import.meta.dirname, 'cri-runtime-v1.proto');

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export interface PortMapping {
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

/** The sandbox config the kubelet would send (metadata, hostname, ports). */
export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt?: number };
  hostname?: string;
  portMappings?: PortMapping[];
  labels?: Record<string, string>;
}

export interface PodSandboxStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  network?: { ip: string; additionalIps: { ip: string }[] } | null;
}

let definition: grpc.GrpcObject | undefined;

function loadService(): grpc.ServiceClientConstructor {
  definition ??= grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: true }));
  const runtime = (definition.runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return runtime.RuntimeService as grpc.ServiceClientConstructor;
}

export class CriClient {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    const Service = loadService();
    this.client = new Service(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<T>(method: string, req: unknown, timeoutMs = 60_000): Promise<T> {
    const fn = (this.client as unknown as Record<string, Unary>)[method];
    if (!fn) throw new Error(`CRI method ${method} is not in the proto subset`);
    return new Promise<T>((resolve, reject) => {
      fn.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new Error(`CRI ${method}: ${err.details || err.message}`));
        else resolve(res as T);
      });
    });
  }

  close(): void {
    this.client.close();
  }

  version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call('Version', { version: 'v1' }, 2000);
  }

  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    return (await this.call<{ podSandboxId: string }>('RunPodSandbox', { config })).podSandboxId;
  }

  /** Status, plus containerd's verbose info (its "info" JSON carries the sandbox's netns path). */
  async podSandboxStatus(id: string): Promise<{ status: PodSandboxStatus; info: Record<string, unknown> }> {
    const r = await this.call<{ status: PodSandboxStatus; info: Record<string, string> }>('PodSandboxStatus', { podSandboxId: id, verbose: true });
    return { status: r.status, info: r.info.info ? (JSON.parse(r.info.info) as Record<string, unknown>) : {} };
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { podSandboxId: id });
  }

  async listPodSandbox(): Promise<{ id: string; state: string }[]> {
    return (await this.call<{ items: { id: string; state: string }[] }>('ListPodSandbox', {})).items;
  }

  /** CreateContainer + StartContainer: `command` runs in the sandbox (sharing its network namespace). */
  async runContainer(sandboxId: string, sandboxConfig: PodSandboxConfig, name: string, image: string, command: string[]): Promise<string> {
    const { containerId } = await this.call<{ containerId: string }>('CreateContainer', {
      podSandboxId: sandboxId,
      config: { metadata: { name }, image: { image }, command },
      sandboxConfig,
    });
    await this.call('StartContainer', { containerId });
    return containerId;
  }

  async stopContainer(id: string, timeoutSeconds = 0): Promise<void> {
    await this.call('StopContainer', { containerId: id, timeout: timeoutSeconds });
  }

  async removeContainer(id: string): Promise<void> {
    await this.call('RemoveContainer', { containerId: id });
  }

  async execSync(id: string, cmd: string[], timeoutSeconds = 10): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const r = await this.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>('ExecSync', { containerId: id, cmd, timeout: timeoutSeconds }, (timeoutSeconds + 10) * 1000);
    return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), exitCode: r.exitCode };
  }
}
