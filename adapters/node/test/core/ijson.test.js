import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DEPTH, NotIJson, hasLoneSurrogate, numberLiteralIsBad, scanJson } from '../../src/core/ijson.js';

test('reads what JSON.parse reads', () => {
  const text = '{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n\\/"],"b":{},"c":[]} ';
  assert.deepEqual(scanJson(text).value, JSON.parse(text));
});

test('MSG-7: a member named twice is refused, names compared after unescaping', () => {
  assert.throws(() => scanJson('{"a":1,"a":2}'), NotIJson);
  assert.throws(() => scanJson('{"a":1,"\\u0061":2}'), NotIJson);
  assert.throws(() => scanJson('[{"x":{"k":1,"k":1}}]'), NotIJson);
  assert.deepEqual(scanJson('{"a":1,"A":2}').value, { a: 1, A: 2 });
});

test('MSG-6: unpaired surrogate escapes are refused, a pair is one character', () => {
  assert.throws(() => scanJson('"\\ud800"'), NotIJson);
  assert.throws(() => scanJson('"\\udc00\\ud800"'), NotIJson);
  assert.throws(() => scanJson('{"\\udfff":1}'), NotIJson);
  assert.equal(scanJson('"\\ud83c\\udf89"').value, '🎉');
});

test('MSG-8: integer literals beyond 2^53-1 and overflowing numbers are reported with their path', () => {
  const { badNumbers } = scanJson('{"data":[9007199254740992,{"n":-9007199254740992}],"x":1e400}');
  assert.deepEqual(badNumbers, [['data', 0], ['data', 1, 'n'], ['x']]);
  assert.deepEqual(scanJson('[9007199254740991,-9007199254740991,1e300,0.5,1e-400,12345678901234567890.5]').badNumbers, []);
});

test('numberLiteralIsBad follows the literal, not the value', () => {
  assert.equal(numberLiteralIsBad('9007199254740991'), false);
  assert.equal(numberLiteralIsBad('9007199254740992'), true);
  assert.equal(numberLiteralIsBad('-123456789012345678901234567890'), true);
  assert.equal(numberLiteralIsBad('9007199254740993.0'), false);
  assert.equal(numberLiteralIsBad('-1.5e309'), true);
});

test('__proto__ stays an own member, as JSON.parse makes it', () => {
  const { value } = scanJson('{"__proto__":{"polluted":1}}');
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.deepEqual(Object.keys(value), ['__proto__']);
});

test('refuses malformed JSON and nesting beyond MAX_DEPTH', () => {
  for (const bad of ['', '{', '[1,]', '01', '"a', '{"a" 1}', 'tru', '"\t"', '1 2', '\ufeff1']) {
    assert.throws(() => scanJson(bad), NotIJson, bad);
  }
  assert.doesNotThrow(() => scanJson('['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH)));
  assert.throws(() => scanJson('['.repeat(100000) + ']'.repeat(100000)), NotIJson);
});

test('hasLoneSurrogate', () => {
  assert.equal(hasLoneSurrogate('a\ud83c\udf89'), false);
  assert.equal(hasLoneSurrogate('\udf89'), true);
  assert.equal(hasLoneSurrogate('x\ud83c'), true);
});
