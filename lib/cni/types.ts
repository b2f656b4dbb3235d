/**
 * The internal result type is always the newest (1.1.0) shape. Older versions
 * exist only at the edges, in version.ts.
 */
export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IpConfig {
  /** Index into Result.interfaces. */
  interface?: number;
  /** CIDR notation: address/prefix. */
  address: string;
  gateway?: string;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

export interface IpamConf {
  type: string;
  [key: string]: unknown;
}

/** The parts of a network configuration that every plugin reads. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: IpamConf;
  dns?: Dns;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  /** Already converted to the internal result type by parseNetConf. */
  prevResult?: Result;
  [key: string]: unknown;
}

export interface ValidAttachment {
  containerID: string;
  ifname: string;
}
