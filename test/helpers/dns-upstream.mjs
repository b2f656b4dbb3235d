#!/usr/bin/env node
/**
 * A test name server (its own process: tests run synchronous commands that
 * would starve an in-process one):
 *
 *   node dns-upstream.mjs ADDR LOG NAME=IP...
 *
 * listens on ADDR:53, UDP and TCP, answers A for the NAME=IP pairs and
 * NXDOMAIN for every other name, appends "udp NAME" / "tcp NAME" to LOG per
 * query, and prints "ready" once both sockets are bound. Loopback addresses
 * only: the tests point the resolver's upstream at it.
 */
import dnsPacket from 'dns-packet';
import { appendFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const [addr, log, ...pairs] = process.argv.slice(2);
if (!addr?.startsWith('127.') || !log) {
  process.stderr.write('usage: dns-upstream.mjs 127.x.y.z LOG NAME=IP...\n');
  process.exit(2);
}
const names = Object.fromEntries(pairs.map((p) => p.split('=')));

function answer(msg, via) {
  const q = dnsPacket.decode(msg);
  const question = q.questions?.[0];
  appendFileSync(log, `${via} ${question?.name ?? ''}\n`);
  const known = question !== undefined && names[question.name] !== undefined;
  const ip = known && question.type === 'A' ? names[question.name] : undefined;
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3),
    questions: q.questions,
    answers: ip ? [{ name: question.name, type: 'A', class: 'IN', ttl: 5, data: ip }] : [],
  });
}

const udp = createSocket('udp4');
udp.on('message', (m, r) => udp.send(answer(m, 'udp'), r.port, r.address));
const tcp = createServer((c) => {
  let buf = Buffer.alloc(0);
  c.on('error', () => c.destroy());
  c.on('data', (b) => {
    buf = Buffer.concat([buf, b]);
    if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
    const out = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)), 'tcp');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(out.length);
    c.end(Buffer.concat([len, out]));
  });
});
await new Promise((resolve) => udp.bind(53, addr, resolve));
await new Promise((resolve) => tcp.listen(53, addr, resolve));
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));
