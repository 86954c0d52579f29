// loki-point-ops.js times the point operations of LokiJS, the store inside
// Azurite's table service, at the sizes of issue 17's bench, with the
// collection options Azurite uses (indices on PartitionKey and RowKey;
// LokiTableMetadataStore.createCollectionForTable). It shows why the same
// requests cost more on a bigger directory on Azurite: findOne({PartitionKey,
// RowKey}) narrows by the PartitionKey index, then compares the RowKey of
// every row of the partition (Resultset.findAnd passes no firstOnly), and an
// update moves the row in both binary indices by a linear search of the
// whole collection (adaptiveBinaryIndexUpdate). Table Storage has neither
// term. See docs/benchmarks.md, "Azurite's point operations, alone".
//
// Run it after `make install` (which puts Azurite and its LokiJS in
// internal/azurite/node_modules):
//
//	node bench/loki-point-ops.js
"use strict";
const path = require("path");
const crypto = require("crypto");
const loki = require(require.resolve("lokijs", {
  paths: [path.join(__dirname, "..", "internal", "azurite", "node_modules")],
}));

const ops = 2000;
// [rows, partitions]: the bench's two tenant sizes with the engine's 16
// user buckets, and the two other partitionings one could choose.
const cases = [[10000, 16], [100000, 16], [100000, 256], [100000, 1]];

function partitionOf(id, partitions) {
  return "b" + (parseInt(id.slice(0, 4), 16) % partitions);
}

function msPer(n, f) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  return Number(process.hrtime.bigint() - start) / 1e6 / n;
}

console.log("rows\tpartitions\trows/partition\tfindOne ms\tfindOne+update ms");
for (const [rows, partitions] of cases) {
  const coll = new loki("probe").addCollection("users", { indices: ["PartitionKey", "RowKey"] });
  const ids = [];
  for (let i = 0; i < rows; i++) {
    const id = crypto.randomUUID();
    ids.push(id);
    coll.insert({ PartitionKey: partitionOf(id, partitions), RowKey: id,
      properties: { status: "active", mail: `user${i}@contoso.example`, groups: "x".repeat(200) } });
  }
  const key = (i) => {
    const id = ids[(i * 7919) % rows];
    return { PartitionKey: partitionOf(id, partitions), RowKey: id };
  };
  const read = msPer(ops, (i) => coll.findOne(key(i)));
  const write = msPer(ops, (i) => {
    const doc = coll.findOne(key(i));
    doc.properties.status = i % 2 ? "active" : "disabled";
    coll.update(doc);
  });
  console.log([rows, partitions, Math.round(rows / partitions), read.toFixed(3), write.toFixed(3)].join("\t"));
}
