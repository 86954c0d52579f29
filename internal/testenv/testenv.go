// Package testenv holds helpers shared by the tests of every package: above
// all a real storage emulator (Azurite) to run against.
//
// Where Azurite comes from: when ENTRASYNC_TEST_STORAGE is set (`make test`
// starts one Azurite for the whole suite and exports its connection string
// there) every test binary uses that one. Otherwise the first call to Storage
// in a test binary installs the pinned Azurite if needed (`npm ci`, about half
// a minute once) and starts a private instance, which Main stops when the
// binary's tests are done. Tests never skip for want of Azurite: they start it
// or fail saying how to get it.
//
// A package whose tests call Storage must declare
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Tests sharing one Azurite keep apart by naming their tables and containers
// with UniqueName.
//
// For tests that run a process or server: SyncBuffer collects its output
// while the test reads it, and Eventually waits for a line, a record or any
// other condition without a timed assertion.
package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/azurite"
)

// StorageEnv names the variable holding a storage connection string that
// tests use instead of starting their own Azurite.
const StorageEnv = "ENTRASYNC_TEST_STORAGE"

var (
	mainRunning atomic.Bool

	once     sync.Once
	instance *azurite.Instance
	connStr  string
	startErr error
)

// Main runs the package's tests and then stops the Azurite that Storage
// started, if any. Call it from TestMain.
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	if instance != nil {
		instance.Close()
	}
	os.Exit(code)
}

// Storage returns the connection string of a running Azurite (see the package
// doc for which one). It fails the test, never skips it, when none can be had.
func Storage(t testing.TB) string {
	t.Helper()
	once.Do(func() { connStr, startErr = storage() })
	if startErr != nil {
		t.Fatal(startErr)
	}
	return connStr
}

func storage() (string, error) {
	if cs := os.Getenv(StorageEnv); cs != "" {
		if err := checkReachable(cs); err != nil {
			return "", err
		}
		return cs, nil
	}
	if !mainRunning.Load() {
		// Without Main nobody would stop the instance at the end of the binary.
		return "", fmt.Errorf("testenv.Storage: this package has no TestMain calling testenv.Main; add\n\tfunc TestMain(m *testing.M) { testenv.Main(m) }")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := azurite.Install(ctx); err != nil {
		return "", fmt.Errorf("Azurite (the storage emulator these tests run against) is not installed and installing it failed: %v\n"+
			"Install it with `go run ./internal/cmd/azurite -install` (needs Node.js 20 and npm with the npm registry reachable), or run the tests with `make test`, which installs and starts it", err)
	}
	inst, err := azurite.Start(ctx, azurite.Options{})
	if err != nil {
		return "", fmt.Errorf("could not start Azurite for the tests: %v", err)
	}
	instance = inst
	return inst.ConnectionString(), nil
}

// checkReachable dials the TableEndpoint (or BlobEndpoint) of cs once, so a
// stale ENTRASYNC_TEST_STORAGE fails with one clear message instead of every
// test timing out its own way.
func checkReachable(cs string) error {
	var endpoint string
	for _, part := range strings.Split(cs, ";") {
		k, v, _ := strings.Cut(part, "=")
		if (strings.EqualFold(k, "TableEndpoint") || strings.EqualFold(k, "BlobEndpoint")) && endpoint == "" {
			endpoint = v
		}
	}
	if endpoint == "" {
		return nil // an account-style string (EndpointSuffix); let the tests speak
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s holds an endpoint that is not a URL; unset it to let the tests start their own Azurite", StorageEnv)
	}
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		return fmt.Errorf("%s points at %s, which does not answer (%v); start Azurite again (`make test` does) or unset %s so the tests start their own", StorageEnv, u.Host, err, StorageEnv)
	}
	c.Close()
	return nil
}

// UniqueName returns a name no other test of this run uses, usable both as a
// table name or table prefix (letters and digits, starting with a letter) and
// as a blob container name (lowercase letters, digits): prefix (lower-cased,
// stripped to letters and digits, at most 12), then up to 8 letters of the
// test's name for whoever reads the emulator, then 8 random characters. It is
// at most 28 characters long, leaving room for a table suffix within 63.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	name := alnum(prefix, 12)
	if name == "" || name[0] < 'a' { // must start with a letter
		name = ("t" + name)[:min(len(name)+1, 12)]
	}
	name += alnum(t.Name(), 8)
	const digits = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [8]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return name + string(b[:])
}

func alnum(s string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() == max {
			break
		}
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
