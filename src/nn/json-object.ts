/**
 * The JSON object of a config file (diffusers' config.json, a tokenizer's tokenizer.json):
 * JSON.parse, so as in Python's json module the last of duplicate keys wins, with nesting bounded
 * before anything walks the value. Safetensors headers, which must be stricter: strict-json.ts.
 */

/** Config files nest a handful of levels; deeper input is refused. */
const MAX_CONFIG_DEPTH = 32;

/** The nesting depth of a JSON value (a scalar is 0), counted up to just past MAX_CONFIG_DEPTH. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    deepest = Math.max(deepest, d + 1);
    if (deepest > MAX_CONFIG_DEPTH) break;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return deepest;
}

/**
 * The object that `text` holds; an `error` (the reader's own class) naming `path` when it is not
 * JSON, not an object, or nested more than MAX_CONFIG_DEPTH levels deep.
 */
export function parseJsonObject(
  text: string,
  path: string,
  error: new (message: string) => Error,
): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new error(`${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new error(`${path}: expected a JSON object`);
  }
  if (depthOf(json) > MAX_CONFIG_DEPTH) {
    throw new error(`${path}: nested more than ${MAX_CONFIG_DEPTH} levels deep`);
  }
  return json as Record<string, unknown>;
}
