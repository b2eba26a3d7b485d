const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

export function decodeText(data: Uint8Array): string {
  return decoder.decode(data);
}

export function encodeJson(value: unknown): Uint8Array {
  const text = JSON.stringify(value);
  // JSON.stringify returns undefined for undefined, functions and symbols: nothing to send.
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return encoder.encode(text);
}

/** Parses without validating: callers check the shape with the wire schemas in contracts. */
export function decodeJson<T = unknown>(data: Uint8Array): T {
  return JSON.parse(decoder.decode(data)) as T;
}
