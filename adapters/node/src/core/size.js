/**
 * LIM-3: `data` is measured as the UTF-8 length of its RFC 8785 serialization. For I-JSON
 * values (already checked by ./ijson.js) JSON.stringify writes exactly that, member order
 * aside, which changes no length.
 * @param {unknown} data
 * @returns {number}
 */
export function payloadBytes(data) {
  return Buffer.byteLength(JSON.stringify(data), 'utf8');
}
