/**
 * Applying the nftables layout of nftables.ts: one `nft -f -` transaction per
 * ADD or DEL, made of element changes (plus the idempotent static part).
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import { ExecError, run } from '../../lib/exec.ts';
import type { Family } from '../../lib/ip/prefix.ts';
import { logDebug } from '../../lib/log.ts';
import { appliesTo } from './config.ts';
import {
  conditionalRules,
  elementTag,
  NFT_TABLE,
  NFT_TAGGED_SETS,
  podElements,
  renderPodAdd,
  renderPodDelete,
  taggedElements,
  taggedRuleHandles,
  type NftElement,
  type NftPodOptions,
} from './nftables.ts';
import type { AttachmentRecord, PortHolder, PortmapState } from './state.ts';

function podOptions(rec: AttachmentRecord, family: Family): NftPodOptions {
  return { snat: rec.snat, masqAll: rec.masqAll, conditions: family === 4 ? rec.conditionsV4 : rec.conditionsV6 };
}

function families(rec: AttachmentRecord): Family[] {
  return ([4, 6] as Family[]).filter((f) => rec.container[f] && rec.mappings.some((m) => appliesTo(m, f)));
}

export function recordElements(rec: AttachmentRecord): NftElement[] {
  return families(rec).flatMap((f) => podElements(podOptions(rec, f), f, rec.container[f]!, rec.mappings));
}

const tagOf = (h: PortHolder) => elementTag(h.network, h.containerId, h.ifName);

async function nft(script: string): Promise<void> {
  await run(['nft', '-f', '-'], { input: script });
}

/** Elements only first (the common case, ~10 ms cheaper); with the static part when something is missing. */
async function nftWithStatic(render: (withStatic: boolean) => string): Promise<void> {
  try {
    await nft(render(false));
  } catch (e) {
    if (!(e instanceof ExecError) || !/No such file or directory/.test(e.stderr)) throw e;
    await nft(render(true));
  }
}

export async function setupPodNft(rec: AttachmentRecord): Promise<void> {
  const tag = tagOf(rec);
  const rules = families(rec).flatMap((f) => conditionalRules(podOptions(rec, f), f, rec.container[f]!, rec.mappings, tag));
  try {
    await nftWithStatic((withStatic) => renderPodAdd(recordElements(rec), rules, tag, withStatic));
  } catch (e) {
    if (e instanceof ExecError && /File exists/.test(e.stderr)) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, 'a requested host port is already mapped to another target in nftables table inet tscni_portmap', e.stderr.trim());
    }
    throw e;
  }
}

async function conditionalHandles(tag: string): Promise<number[]> {
  const r = await run(['nft', '-j', '-a', 'list', 'chain', 'inet', NFT_TABLE, 'conditional'], { allowFailure: true });
  return r.code === 0 ? taggedRuleHandles(r.stdout, tag) : [];
}

/** Everything tagged with this attachment, read back from the table (DEL without a record). */
async function taggedInTable(tag: string): Promise<NftElement[]> {
  const r = await run(['nft', '-j', 'list', 'table', 'inet', NFT_TABLE], { allowFailure: true });
  if (r.code !== 0) return [];
  const doc = JSON.parse(r.stdout) as { nftables?: Record<string, { name?: string }>[] };
  const out: NftElement[] = [];
  for (const item of doc.nftables ?? []) {
    const body = item.map ?? item.set;
    if (!body?.name || !NFT_TAGGED_SETS.includes(body.name)) continue;
    out.push(...taggedElements(JSON.stringify({ nftables: [item] }), body.name, tag));
  }
  return out;
}

/** Only the table names: listing the table itself would read every element. */
async function tableExists(): Promise<boolean> {
  try {
    const r = await run(['nft', 'list', 'tables', 'inet'], { allowFailure: true });
    return r.code === 0 && r.stdout.split('\n').some((l) => l.trim() === `table inet ${NFT_TABLE}`);
  } catch {
    return false;
  }
}

/**
 * DEL. Call with the portmap lock held: shared hairpin subnets are removed
 * only by their last user, and that must not race with an ADD that starts
 * using the subnet. Without a record, the elements are found by their tag.
 */
export async function teardownPodNft(state: PortmapState, holder: PortHolder, rec: AttachmentRecord | undefined): Promise<void> {
  // With a record the table existed at ADD; without one, do not create it just to find nothing.
  if (!rec && !(await tableExists())) return;
  const tag = tagOf(holder);
  const handles = !rec || rec.conditionsV4 || rec.conditionsV6 ? await conditionalHandles(tag) : [];
  const lastUser = (e: NftElement) => state.podnetUsers(holder, e.set === 'podnets4' ? 4 : 6, e.key) === 0;
  if (rec) {
    const elements = recordElements(rec).filter((e) => !e.set.startsWith('podnets') || lastUser(e));
    try {
      await nftWithStatic((withStatic) => renderPodDelete(elements, tag, handles, withStatic));
      return;
    } catch (e) {
      logDebug(`portmap: exact nft teardown for ${tag} failed, looking elements up by tag: ${(e as Error).message}`);
    }
  }
  const found = await taggedInTable(tag);
  // A subnet element carries the tag of the pod that added it first; keep it while others use it.
  const elements = found.filter((e) => !e.set.startsWith('podnets') || lastUser(e));
  if (elements.length || handles.length) await nft(renderPodDelete(elements, tag, handles));
}

/** CHECK: every element of the pod is in its map or set. */
export async function checkPodNft(rec: AttachmentRecord): Promise<void> {
  const elements = recordElements(rec);
  const results = await Promise.all(
    elements.map((e) => run(['nft', 'get', 'element', 'inet', NFT_TABLE, e.set, `{ ${e.key} }`], { allowFailure: true }).catch(() => ({ code: 1, stdout: '' }))),
  );
  const missing = elements.filter((_, i) => results[i]?.code !== 0 || (elements[i]?.value && !results[i]?.stdout.includes(elements[i]!.value!.replace(/ /g, ' '))));
  if (missing.length) {
    throw new CniError(ErrorCode.Internal, `portmap elements of ${rec.containerId} are missing`, missing.map((e) => `${e.set} { ${e.key}${e.value ? ` : ${e.value}` : ''} }`).join('; '));
  }
}
