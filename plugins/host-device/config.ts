/**
 * host-device configuration: parse + validate, pure (no kernel or sysfs
 * access). Keys as the reference (plugins/main/host-device/host-device.go):
 * device, hwaddr, kernelpath, pciBusID (runtimeConfig.deviceID overrides
 * pciBusID), ipam (optional), dns. At least one selector is required; when
 * several are set the first of device, hwaddr, kernelpath, pciBusID wins, as
 * in the reference.
 */
import { badConfig, dnsOf, ipamTypeOf, isIfName, readMac, readString } from '../../lib/cni/config-read.ts';
import type { Dns, NetConf } from '../../lib/cni/types.ts';

/** How the host device is picked: by name, by MAC, by a /sys/devices path, or by PCI address. */
export type DeviceSelector =
  | { by: 'device'; name: string }
  | { by: 'hwaddr'; mac: string }
  | { by: 'kernelpath'; path: string }
  | { by: 'pciBusID'; pciAddr: string };

export interface HostDeviceConfig {
  name: string;
  cniVersion: string;
  selector: DeviceSelector;
  ipamType: string | undefined;
  dns: Dns | undefined;
}

/** A PCI address as sysfs names it: domain:bus:device.function ("0000:00:19.0"). */
const PCI_ADDR_RE = /^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;

/** Describe a selector for messages: device "eth1", hwaddr 02:.., ... */
export function describeSelector(s: DeviceSelector): string {
  switch (s.by) {
    case 'device':
      return `device "${s.name}"`;
    case 'hwaddr':
      return `hwaddr ${s.mac}`;
    case 'kernelpath':
      return `kernelpath "${s.path}"`;
    case 'pciBusID':
      return `pciBusID ${s.pciAddr}`;
  }
}

/** Parse and validate; code 7 naming the field. */
export function parseHostDeviceConfig(conf: NetConf): HostDeviceConfig {
  const raw = conf as Record<string, unknown>;
  const device = readString(raw, 'device');
  const hwaddr = readString(raw, 'hwaddr');
  const kernelpath = readString(raw, 'kernelpath');
  let pciAddr = readString(raw, 'pciBusID');
  const rc = conf.runtimeConfig;
  if (rc && rc.deviceID !== undefined && rc.deviceID !== null && rc.deviceID !== '') {
    if (typeof rc.deviceID !== 'string') throw badConfig('invalid "runtimeConfig.deviceID": must be a string', JSON.stringify(rc.deviceID));
    // The standardised device ID from the runtime (device plugins) overrides pciBusID, as in the reference.
    pciAddr = rc.deviceID;
  }
  let selector: DeviceSelector;
  if (device) {
    if (!isIfName(device)) throw badConfig('invalid "device": must be an interface name of 1-15 characters without "/", ":" or spaces', JSON.stringify(device));
    selector = { by: 'device', name: device };
  } else if (hwaddr) {
    selector = { by: 'hwaddr', mac: readMac('hwaddr', hwaddr) as string };
  } else if (kernelpath) {
    // Checked here (the reference checks when it looks the device up): nothing outside /sys/devices is read.
    if (!kernelpath.startsWith('/sys/devices/') || kernelpath.split('/').includes('..')) {
      throw badConfig(`kernel device path "${kernelpath}" must be absolute and begin with /sys/devices/`);
    }
    selector = { by: 'kernelpath', path: kernelpath };
  } else if (pciAddr) {
    if (!PCI_ADDR_RE.test(pciAddr)) throw badConfig(`invalid PCI address "${pciAddr}"`, 'pciBusID (or runtimeConfig.deviceID) must look like 0000:00:19.0');
    selector = { by: 'pciBusID', pciAddr: pciAddr.toLowerCase() };
  } else {
    throw badConfig('specify either "device", "hwaddr", "kernelpath" or "pciBusID"');
  }
  return { name: conf.name, cniVersion: conf.cniVersion, selector, ipamType: ipamTypeOf(conf), dns: dnsOf(conf) };
}
