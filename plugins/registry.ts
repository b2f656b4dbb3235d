/**
 * Every plugin in the multi-call executable, by its CNI type name, as a
 * loader: a call evaluates only the plugin it runs (and the CLI only the
 * names), which keeps the module start-up of every call small.
 */
import type { Plugin } from '../lib/cni/skel.ts';

export type PluginLoader = () => Promise<Plugin>;

export const PLUGIN_LOADERS: ReadonlyMap<string, PluginLoader> = new Map<string, PluginLoader>([
  ['loopback', async () => (await import('./loopback/plugin.ts')).loopbackPlugin],
  ['host-local', async () => (await import('../ipam/host-local/plugin.ts')).hostLocalPlugin],
  ['bridge', async () => (await import('./bridge/plugin.ts')).bridgePlugin],
  ['portmap', async () => (await import('./portmap/plugin.ts')).portmapPlugin],
  ['ptp', async () => (await import('./ptp/plugin.ts')).ptpPlugin],
  ['macvlan', async () => (await import('./macvlan/plugin.ts')).macvlanPlugin],
  ['static', async () => (await import('../ipam/static/plugin.ts')).staticPlugin],
  ['ipvlan', async () => (await import('./ipvlan/plugin.ts')).ipvlanPlugin],
  ['vlan', async () => (await import('./vlan/plugin.ts')).vlanPlugin],
  ['host-device', async () => (await import('./host-device/plugin.ts')).hostDevicePlugin],
  ['dummy', async () => (await import('./dummy/plugin.ts')).dummyPlugin],
  ['dnsname', async () => (await import('./dns/plugin.ts')).dnsnamePlugin],
  ['firewall', async () => (await import('./firewall/plugin.ts')).firewallPlugin],
  ['tuning', async () => (await import('./tuning/plugin.ts')).tuningPlugin],
  ['etcd-subnet', async () => (await import('../ipam/etcd-subnet/plugin.ts')).etcdSubnetPlugin],
  ['vxlan', async () => (await import('./vxlan/plugin.ts')).vxlanPlugin],
]);

export const PLUGIN_NAMES: readonly string[] = [...PLUGIN_LOADERS.keys()];
