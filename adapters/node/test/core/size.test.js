import { test } from 'node:test';
import assert from 'node:assert/strict';
import { payloadBytes } from '../../src/core/size.js';
import { scanJson } from '../../src/core/ijson.js';

test('LIM-3: the table of §10.12', () => {
  const table = [
    ['1.0', 1], ['1e16', 17], ['0.0000001', 4], ['"é"', 4], ['"\\u00e9"', 4], ['"\\u0000"', 8],
    ['"\\/"', 3], ['{"b": [1.5, true], "a": null}', 25], ['-0', 1], ['1e21', 5], ['"\u2028"', 5],
  ];
  for (const [text, bytes] of table) assert.equal(payloadBytes(scanJson(text).value), bytes, text);
});
