/** Every plugin in the multi-call executable, by its CNI type name. */
import type { Plugin } from '../lib/cni/skel.ts';
import { hostLocalPlugin } from '../ipam/host-local/plugin.ts';
import { staticPlugin } from '../ipam/static/plugin.ts';
import { bridgePlugin } from './bridge/plugin.ts';
import { loopbackPlugin } from './loopback/plugin.ts';
import { macvlanPlugin } from './macvlan/plugin.ts';
import { portmapPlugin } from './portmap/plugin.ts';
import { ptpPlugin } from './ptp/plugin.ts';
import { ipvlanPlugin } from './ipvlan/plugin.ts';
import { vlanPlugin } from './vlan/plugin.ts';

export const PLUGINS: ReadonlyMap<string, Plugin> = new Map<string, Plugin>([
  ['loopback', loopbackPlugin],
  ['host-local', hostLocalPlugin],
  ['bridge', bridgePlugin],
  ['portmap', portmapPlugin],
  ['ptp', ptpPlugin],
  ['macvlan', macvlanPlugin],
  ['static', staticPlugin],
  ['ipvlan', ipvlanPlugin],
  ['vlan', vlanPlugin],
]);

export const PLUGIN_NAMES: readonly string[] = [...PLUGINS.keys()];
