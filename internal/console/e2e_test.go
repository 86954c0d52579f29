package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/localstack"
	"github.com/entrasync/entrasync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// xssName is a display name that is markup: the console must show it as
// these characters, and the handler must never run.
const xssName = `<img src=x onerror="window.__xss=1">`

// chromium finds Debian's browser. Under CI a missing browser fails the
// test: the browser tests are part of the suite, not an extra.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("ENTRASYNC_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "Chromium is not installed; run `bash internal/console/e2e/install.sh` (make test does) or set ENTRASYNC_CHROMIUM"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// playwright makes sure node_modules holds the pinned playwright-core, with
// the stamp install.sh writes, and never lets it download a browser.
func playwright(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", ".entrasync-lock-sha256")
	if got, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(got)) == want {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser starts the stack `make run` starts, runs its first
// sync, and hands it to e2e/console.mjs, which uses the console in Chromium
// as an admin and as support would (see the steps there). Screenshots land in
// bin/console-e2e (or $ENTRASYNC_E2E_ARTIFACTS).
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("browser test: not in -short")
	}
	browser := chromium(t)
	root, err := localstack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	e2eDir := filepath.Join(root, "internal", "console", "e2e")
	playwright(t, e2eDir)
	out := os.Getenv("ENTRASYNC_E2E_ARTIFACTS")
	if out == "" {
		out = filepath.Join(root, "bin", "console-e2e")
	}
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	prefix := testenv.UniqueName(t, "console")
	const users = 150
	// Slow pages, so a run lasts a few seconds and its progress shows.
	stack, err := localstack.Start(ctx, localstack.Options{
		AppDir: root, StorageConnectionString: testenv.Storage(t), TablePrefix: prefix, LogContainer: strings.ToLower(prefix),
		Graph:    graphsim.Config{Users: users - 1, Seed: 7, PageSize: 10, PageLatency: 250 * time.Millisecond, NullForClearedProperties: true},
		Host:     devhost.Options{DisableTimers: true},
		Settings: map[string]string{"LOG_LEVEL": "warn"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	if _, err := stack.Graph.Tenant().AddUser(graphsim.User{Attributes: map[string]any{
		"displayName": xssName, "mail": "mallory@contoso.example", "userPrincipalName": "mallory@contoso.example", "department": `<b>bold</b>`,
	}}); err != nil {
		t.Fatal(err)
	}
	// Ten users per page: a run has pages to count.
	resp, body, err := stack.Do(ctx, stack.AdminKey, "GET", "/settings", nil, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET settings: %v %v", resp, err)
	}
	var settings map[string]any
	if err := json.Unmarshal(body, &settings); err != nil {
		t.Fatal(err)
	}
	settings["pageSize"] = 10
	if resp, body, err := stack.Do(ctx, stack.AdminKey, "PUT", "/settings", settings, http.Header{"If-Match": {resp.Header.Get("ETag")}}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT settings: %v %s", err, body)
	}
	id, err := stack.SyncNow(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stack.WaitRun(ctx, id)
	if err != nil || first.Status != "succeeded" {
		t.Fatalf("first sync: %+v, %v", first, err)
	}
	ca := filepath.Join(t.TempDir(), "graphsim-ca.pem")
	if err := os.WriteFile(ca, stack.Graph.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	cmd := exec.CommandContext(ctx, "node", "console.mjs")
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+stack.APIURL()+"/console/",
		"API_URL="+stack.APIURL(),
		"ADMIN_KEY="+stack.AdminKey,
		"SUPPORT_KEY="+stack.SupportKey,
		"SIM_URL="+stack.Graph.URL(),
		"NODE_EXTRA_CA_CERTS="+ca,
		"CHROMIUM="+browser,
		"OUT_DIR="+out,
		"XSS_NAME="+xssName,
		"EXPECT_SEEN="+strconv.FormatInt(first.Counters["seen"], 10),
		"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1",
	)
	output, err := cmd.CombinedOutput()
	t.Logf("console.mjs (%s), screenshots in %s:\n%s", time.Since(started).Round(time.Second), out, output)
	if err != nil {
		t.Fatalf("the browser test failed: %v (see the output above and %s)", err, filepath.Join(out, "failed.png"))
	}
}
