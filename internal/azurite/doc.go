// Package azurite installs and runs Azurite, Microsoft's Azure Storage
// emulator, for tests and local runs: blob, queue and table services on free
// loopback ports, in memory, stopped with one kill.
//
// # The pin
//
// Azurite comes from npm and is pinned in package.json and package-lock.json
// beside this file (node_modules is git-ignored; Install runs `npm ci`).
// The pinned version is 3.35.0 because it is the newest release whose
// package.json still accepts the Node.js we run (engines: node >= 10; this
// project's machines have Node 20). 3.36.0 declares node >= 21 and 3.37.0
// node >= 22: they install with EBADENGINE warnings and happen to start, but
// we would be running outside their supported range. 3.35.0 was checked on
// Node 20 with in-memory blob and table storage, table batches and blob SAS.
// Move the pin (edit package.json, run `npm install --save-exact` here, commit
// both files) when the machines move to Node 22.
//
// # Finding the install
//
// The package directory is $ENTRASYNC_AZURITE_DIR when set, otherwise
// internal/azurite under the module root (the first directory holding go.mod,
// walking up from the working directory), which is where `go test` and
// `go run` run from.
//
// The connection string returned by Instance.ConnectionString uses Azurite's
// documented development account (devstoreaccount1) and its public key. It is
// not a secret, but callers still never log connection strings, so that the
// habit holds for the real ones.
package azurite
