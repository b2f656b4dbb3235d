/**
 * The one encoding of outside values (interface names, container IDs,
 * network names) into `nft -f` text. nft's quoted strings have no escapes:
 * a `"` cannot be carried, and a backslash or control character is not
 * read back as written. So values are first mapped to their stored form
 * (those characters become "_", the length is cut to nft's limit), and that
 * form is used both when writing and when matching what nft lists back, so
 * a rule written for a pod is always found again by its DEL. Inside quotes,
 * `#`, `;`, `{`, `}` and spaces are literal.
 *
 * Chain and set names cannot be quoted at all in nft's text syntax (nft
 * 1.0.6: "unexpected quoted string"): they are identifiers of letters,
 * digits and `_ . / -`, so any other character becomes "_" (nftName).
 */

/** nft keeps comments (NFT_USERDATA) of at most 128 bytes; identifiers are at most 255. */
export const NFT_COMMENT_MAX = 127;
export const NFT_NAME_MAX = 255;

/** What nft stores for `s`: `"`, `\` and control characters replaced by "_", cut to `max` bytes on a character boundary. */
export function nftStoredString(s: string, max = NFT_COMMENT_MAX): string {
  // eslint-disable-next-line no-control-regex
  let out = s.replace(/["\\\u0000-\u001f\u007f]/g, '_');
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1);
  return out;
}

/** `s` as an nft quoted string (a comment, or a chain name that may hold any character). */
export function nftQuote(s: string, max = NFT_COMMENT_MAX): string {
  return `"${nftStoredString(s, max)}"`;
}

/** `s` as an nft identifier (chain name): characters outside [A-Za-z0-9_./-] become "_", cut to `max` bytes. */
export function nftName(s: string, max = NFT_NAME_MAX): string {
  let out = s.replace(/[^A-Za-z0-9_./-]/g, '_');
  if (!/^[A-Za-z_]/.test(out)) out = `_${out}`;
  return out.slice(0, max);
}
