package testenv

import (
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestStorageAnswers(t *testing.T) {
	cs := Storage(t)
	var table string
	for _, part := range strings.Split(cs, ";") {
		if v, ok := strings.CutPrefix(part, "TableEndpoint="); ok {
			table = v
		}
	}
	if table == "" {
		t.Fatal("connection string has no TableEndpoint")
	}
	resp, err := http.Get(table)
	if err != nil {
		t.Fatalf("table endpoint does not answer: %v", err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Server"), "Azurite-Table/") {
		t.Errorf("Server = %q, want Azurite-Table/...", resp.Header.Get("Server"))
	}
	if again := Storage(t); again != cs {
		t.Error("second Storage call returned another connection string")
	}
}

func TestUniqueName(t *testing.T) {
	table := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)
	container := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{2,62}$`)
	seen := map[string]bool{}
	for _, prefix := range []string{"", "9lives", "Users", "a-very-long-prefix-with-dashes/and/slashes", "é"} {
		for range 50 {
			n := UniqueName(t, prefix)
			if !table.MatchString(n) || !container.MatchString(n) || len(n) > 28 {
				t.Fatalf("UniqueName(%q) = %q: not a valid table and container name of <= 28 chars", prefix, n)
			}
			if seen[n] {
				t.Fatalf("UniqueName(%q) repeated %q", prefix, n)
			}
			seen[n] = true
		}
	}
}

func TestStaleStorageEnvFailsClearly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	err = checkReachable("DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;TableEndpoint=http://" + addr + "/a;")
	if err == nil || !strings.Contains(err.Error(), StorageEnv) || strings.Contains(err.Error(), "AccountKey") {
		t.Fatalf("checkReachable error = %v, want one naming %s and no secret", err, StorageEnv)
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("ab"))
				_ = b.String() // reading while others write is what it is for
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("ab", 800) {
		t.Errorf("after 8x100 writes of %q: %d bytes, want %d of the same", "ab", len(got), 1600)
	}
}

func TestEventually(t *testing.T) {
	tests := []struct {
		name      string
		trueAfter int // calls before cond holds; -1 never
		want      bool
		wantCalls int // -1: any number, at least one
	}{
		{"holds at once", 0, true, 1},
		{"holds on the third call", 2, true, 3},
		{"never holds", -1, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			timeout := 30 * time.Second // only the never case waits it out
			if tt.trueAfter < 0 {
				timeout = 50 * time.Millisecond
			}
			got := Eventually(timeout, time.Millisecond, func() bool {
				calls++
				return tt.trueAfter >= 0 && calls > tt.trueAfter
			})
			if got != tt.want || (tt.wantCalls >= 0 && calls != tt.wantCalls) || calls < 1 {
				t.Errorf("Eventually = %v after %d calls, want %v after %d", got, calls, tt.want, tt.wantCalls)
			}
		})
	}
}
