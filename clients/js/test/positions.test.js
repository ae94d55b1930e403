import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalStoragePositions, MemoryPositions, isPosition } from "../src/positions.js";

class FakeStorage {
  constructor() { this.items = new Map(); }
  getItem(key) { return this.items.has(key) ? this.items.get(key) : null; }
  setItem(key, value) { this.items.set(key, String(value)); }
}

test("memory positions keep a copy per channel", () => {
  const store = new MemoryPositions();
  const p = { epoch: "e1", offset: 3 };
  store.set("a", p);
  p.offset = 99;
  assert.deepEqual(store.get("a"), { epoch: "e1", offset: 3 });
  assert.equal(store.get("b"), null);
});

test("localStorage positions round-trip under the prefix", () => {
  const storage = new FakeStorage();
  const store = new LocalStoragePositions("app:", storage);
  store.set("orders:7", { epoch: "e1", offset: 12 });
  assert.deepEqual(JSON.parse(storage.getItem("app:orders:7")), { epoch: "e1", offset: 12 });
  assert.deepEqual(new LocalStoragePositions("app:", storage).get("orders:7"), { epoch: "e1", offset: 12 });
  assert.equal(new LocalStoragePositions("other:", storage).get("orders:7"), null);
});

test("a stored value that is not a position reads as none", () => {
  const storage = new FakeStorage();
  const store = new LocalStoragePositions("p:", storage);
  for (const text of ["not json", "null", "{}", '{"epoch":"","offset":1}', '{"epoch":"e","offset":-1}',
    '{"epoch":"e","offset":1.5}', '{"epoch":5,"offset":1}', "[1,2]"]) {
    storage.setItem("p:c", text);
    assert.equal(store.get("c"), null, text);
  }
});

test("isPosition", () => {
  assert.ok(isPosition({ epoch: "e", offset: 0 }));
  assert.ok(!isPosition({ epoch: "e", offset: 2 ** 60 }));
  assert.ok(!isPosition(null));
  assert.ok(!isPosition("e:1"));
});

test("LocalStoragePositions without a storage says so", () => {
  assert.throws(() => new LocalStoragePositions("p:", undefined), TypeError);
});
