import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPublishData, historyQuery, registrationTtl, singleObjectArgument, transportBound, DEFAULT_LIMITS } from '../../src/core/requests.js';

const code = (fn) => {
  try {
    fn();
  } catch (e) {
    return e.code;
  }
  return 'ok';
};

test('TRN-3: exactly one object argument, no binary', () => {
  assert.equal(code(() => singleObjectArgument([])), 'bad_request');
  assert.equal(code(() => singleObjectArgument([{}, {}])), 'bad_request');
  for (const v of [null, [], 'x', 5, Buffer.from('x')]) assert.equal(code(() => singleObjectArgument([v])), 'bad_request');
  assert.equal(code(() => singleObjectArgument([{ data: { b: Buffer.from('x') } }])), 'bad_request');
  assert.equal(code(() => singleObjectArgument([{ channel: 'a' }])), 'ok');
});

test('PUB-8, PUB-9: MSG-8 numbers are bad_request before the size is judged', () => {
  const huge = { data: 'x'.repeat(100) };
  assert.equal(code(() => checkPublishData(huge, [['data']], 10)), 'bad_request');
  assert.equal(code(() => checkPublishData(huge, [], 10)), 'payload_too_large');
  assert.equal(code(() => checkPublishData({ data: 'é' }, [], 4)), 'ok'); // "é" is 4 bytes
  assert.equal(code(() => checkPublishData({ data: 'é' }, [], 3)), 'payload_too_large');
  assert.equal(code(() => checkPublishData({ data: 1 }, [['id']], 3)), 'ok');
});

test('SES-5 to SES-7', () => {
  assert.equal(registrationTtl({}, { max_ttl_s: 60 }), 60);
  assert.equal(registrationTtl({}, {}), 3600);
  assert.equal(code(() => registrationTtl({ ttl_s: 61 }, { max_ttl_s: 60 })), 'bad_request');
  assert.equal(code(() => registrationTtl({ subscribe: [{ channel: 'a' }, { channel: 'a' }] }, {})), 'bad_request');
});

test('HIS-2, HIS-9: the history query', () => {
  const q = (s) => historyQuery(new URLSearchParams(s));
  assert.deepEqual(q(''), {});
  assert.deepEqual(q('from=beginning&limit=5'), { from: 'beginning', limit: 5 });
  assert.deepEqual(q('from=3&epoch=E'), { from: 3, epoch: 'E' });
  for (const bad of ['from=3', 'from=0&epoch=E', 'from=-1&epoch=E', 'from=1.5&epoch=E', 'limit=0', 'limit=x', 'from=latest', 'limit=1&limit=2', 'from=1&epoch=']) {
    assert.equal(code(() => q(bad)), 'bad_request', bad);
  }
});

test('TRN-7 and API-8 share one bound', () => {
  assert.equal(transportBound(DEFAULT_LIMITS), 6 * 65536 + 16384);
});
