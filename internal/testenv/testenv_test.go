package testenv

import (
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
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
