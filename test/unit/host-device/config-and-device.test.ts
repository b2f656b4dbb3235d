/**
 * host-device, pure parts: config parsing (selectors, precedence,
 * runtimeConfig.deviceID, code 7 errors) and device selection against a
 * fake sysfs tree (kernelpath, pciBusID incl. virtio, userspace/DPDK
 * drivers) and a fake link table; no kernel, no privileges.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NetConf } from '../../../lib/cni/types.ts';
import type { LinkInfo } from '../../../lib/netlink/messages.ts';
import type { Rtnl } from '../../../lib/netlink/rtnl.ts';
import { parseHostDeviceConfig } from '../../../plugins/host-device/config.ts';
import { findHostDevice, hasUserspaceDriver } from '../../../plugins/host-device/device.ts';

const base = { cniVersion: '1.1.0', name: 'n', type: 'host-device' };
const parse = (extra: Record<string, unknown>) => parseHostDeviceConfig({ ...base, ...extra } as NetConf);

describe('parseHostDeviceConfig', () => {
  it('takes the first selector of device, hwaddr, kernelpath, pciBusID', () => {
    expect(parse({ device: 'eth1', hwaddr: '02:00:00:00:00:01' }).selector).toEqual({ by: 'device', name: 'eth1' });
    expect(parse({ hwaddr: '02:AA:00:00:00:01', kernelpath: '/sys/devices/x' }).selector).toEqual({ by: 'hwaddr', mac: '02:aa:00:00:00:01' });
    expect(parse({ kernelpath: '/sys/devices/pci0000:00/0000:00:19.0', pciBusID: '0000:00:19.0' }).selector).toEqual({ by: 'kernelpath', path: '/sys/devices/pci0000:00/0000:00:19.0' });
    expect(parse({ pciBusID: '0000:00:1F.6' }).selector).toEqual({ by: 'pciBusID', pciAddr: '0000:00:1f.6' });
  });

  it('runtimeConfig.deviceID overrides pciBusID', () => {
    expect(parse({ pciBusID: '0000:00:19.0', runtimeConfig: { deviceID: '0000:03:00.1' } }).selector).toEqual({ by: 'pciBusID', pciAddr: '0000:03:00.1' });
  });

  it('ipam and dns are optional', () => {
    expect(parse({ device: 'eth1' })).toMatchObject({ ipamType: undefined, dns: undefined });
    expect(parse({ device: 'eth1', ipam: { type: 'static' }, dns: { nameservers: ['10.0.0.1'] } })).toMatchObject({ ipamType: 'static', dns: { nameservers: ['10.0.0.1'] } });
  });

  it.each([
    [{}, 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'],
    [{ device: 'x'.repeat(16) }, 'invalid "device"'],
    [{ device: 7 }, 'invalid "device": must be a string'],
    [{ hwaddr: '02:00:00:00:00' }, 'invalid MAC address in hwaddr'],
    [{ kernelpath: 'sys/devices/x' }, 'must be absolute and begin with /sys/devices/'],
    [{ kernelpath: '/sys/devices/../../etc' }, 'must be absolute and begin with /sys/devices/'],
    [{ pciBusID: '0000:00:19' }, 'invalid PCI address "0000:00:19"'],
    [{ runtimeConfig: { deviceID: 5 } }, 'invalid "runtimeConfig.deviceID": must be a string'],
  ])('%j: code 7', (extra, msg) => {
    expect(() => parse(extra)).toThrow(expect.objectContaining({ code: 7, msg: expect.stringContaining(msg) }));
  });
});

const link = (index: number, name: string, mac: string, flags = 0): LinkInfo => ({ index, name, mac, flags, up: false, promisc: false, operUp: false, mtu: 1500 });
const LINKS = [link(1, 'lo', '00:00:00:00:00:00', 0x8), link(2, 'enp0s25', '02:00:00:00:00:02'), link(3, 'ens4', '02:00:00:00:00:03')];
/** Just the two reads findHostDevice makes. */
const fakeNl = { getLink: (ref: string | number) => LINKS.find((l) => l.name === ref || l.index === ref), listLinks: () => LINKS, where: 'host' } as unknown as Rtnl;

describe('findHostDevice and hasUserspaceDriver on a fake sysfs', () => {
  const root = mkdtempSync(join(tmpdir(), 'tscni-th-sys-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const dir = (...p: string[]) => mkdirSync(join(root, ...p), { recursive: true });
  // A NIC at 0000:00:19.0 with its netdev, a virtio NIC at 0000:00:04.0, a DPDK-bound NIC at 0000:03:00.0.
  dir('devices', 'pci0000:00', '0000:00:19.0', 'net', 'enp0s25');
  dir('devices', 'pci0000:00', '0000:00:04.0', 'virtio1', 'net', 'ens4');
  dir('devices', 'pci0000:00', '0000:03:00.0');
  dir('bus', 'pci', 'devices');
  dir('bus', 'pci', 'drivers', 'e1000e');
  dir('bus', 'pci', 'drivers', 'vfio-pci');
  for (const pci of ['0000:00:19.0', '0000:00:04.0', '0000:03:00.0']) symlinkSync(join(root, 'devices', 'pci0000:00', pci), join(root, 'bus', 'pci', 'devices', pci));
  symlinkSync(join(root, 'bus', 'pci', 'drivers', 'e1000e'), join(root, 'devices', 'pci0000:00', '0000:00:19.0', 'driver'));
  symlinkSync(join(root, 'bus', 'pci', 'drivers', 'vfio-pci'), join(root, 'devices', 'pci0000:00', '0000:03:00.0', 'driver'));

  it('by device, hwaddr', () => {
    expect(findHostDevice(fakeNl, { by: 'device', name: 'ens4' }, root).index).toBe(3);
    expect(findHostDevice(fakeNl, { by: 'hwaddr', mac: '02:00:00:00:00:02' }, root).name).toBe('enp0s25');
    expect(() => findHostDevice(fakeNl, { by: 'device', name: 'eth9' }, root)).toThrow('failed to find host device: device "eth9": Link not found');
  });

  it('by kernelpath: the first net/ entry that is a link here', () => {
    expect(findHostDevice(fakeNl, { by: 'kernelpath', path: '/sys/devices/pci0000:00/0000:00:19.0' }, root).name).toBe('enp0s25');
    expect(() => findHostDevice(fakeNl, { by: 'kernelpath', path: '/sys/devices/pci0000:00/0000:03:00.0' }, root)).toThrow('failed to find network devices at "/sys/devices/pci0000:00/0000:03:00.0/net"');
  });

  it('by pciBusID, also through virtio*/net', () => {
    expect(findHostDevice(fakeNl, { by: 'pciBusID', pciAddr: '0000:00:19.0' }, root).name).toBe('enp0s25');
    expect(findHostDevice(fakeNl, { by: 'pciBusID', pciAddr: '0000:00:04.0' }, root).name).toBe('ens4');
    expect(() => findHostDevice(fakeNl, { by: 'pciBusID', pciAddr: '0000:03:00.0' }, root)).toThrow('no net directory under pci device 0000:03:00.0');
  });

  it('never the loopback device', () => {
    expect(() => findHostDevice(fakeNl, { by: 'device', name: 'lo' }, root)).toThrow('selects the loopback device "lo"');
  });

  it('userspace (DPDK) drivers; a device without a driver is an error', () => {
    expect(hasUserspaceDriver('0000:03:00.0', root)).toBe(true);
    expect(hasUserspaceDriver('0000:00:19.0', root)).toBe(false);
    expect(() => hasUserspaceDriver('0000:00:04.0', root)).toThrow('error with host device: no driver for PCI device 0000:00:04.0');
  });
});
