/**
 * The example network `tscni install` writes (also shipped as
 * conf-examples/10-tscni.conflist; a test keeps the two identical).
 * Docker's default bridge network, the CNI way: bridge + host-local + portmap,
 * on 10.85.0.0/16 (not 10.88.0.0/16, which podman's and containerd's own
 * default networks use on the same host).
 */
export const EXAMPLE_CONFLIST_NAME = '10-tscni.conflist';

export function exampleConflist(): string {
  const doc = {
    cniVersion: '1.1.0',
    name: 'tscni',
    plugins: [
      {
        type: 'bridge',
        bridge: 'tscni0',
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: '10.85.0.0/16', gateway: '10.85.0.1' }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
