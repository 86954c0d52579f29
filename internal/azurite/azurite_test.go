package azurite_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/azurite"
)

// TestStartClose starts the pinned Azurite, checks each service answers as
// that version, and checks Close stops the process and frees the ports.
func TestStartClose(t *testing.T) {
	ctx := context.Background()
	if err := azurite.Install(ctx); err != nil {
		t.Fatalf("Install: %v", err)
	}
	inst, err := azurite.Start(ctx, azurite.Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inst.Close() })

	for name, u := range map[string]string{"blob": inst.BlobURL, "queue": inst.QueueURL, "table": inst.TableURL} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("GET %s endpoint: %v", name, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Server"); !strings.HasSuffix(got, "/"+azurite.Version) {
			t.Errorf("%s endpoint Server header = %q, want Azurite %s", name, got, azurite.Version)
		}
	}
	cs := inst.ConnectionString()
	for _, want := range []string{"AccountName=devstoreaccount1", "TableEndpoint=" + inst.TableURL, "BlobEndpoint=" + inst.BlobURL} {
		if !strings.Contains(cs, want) {
			t.Errorf("connection string lacks %q", want)
		}
	}

	pid := processID(t, inst)
	if err := inst.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("azurite pid %d still alive after Close", pid)
	}
	u, _ := url.Parse(inst.TableURL)
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Errorf("table port %s still answers after Close", u.Host)
	}
	if _, err := os.Stat(inst.LogFile); !os.IsNotExist(err) {
		t.Errorf("log file %s left behind after Close (err=%v)", inst.LogFile, err)
	}
	if err := inst.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDirEnvWithoutPackageJSON(t *testing.T) {
	t.Setenv(azurite.DirEnv, t.TempDir())
	_, err := azurite.Dir()
	if err == nil || !strings.Contains(err.Error(), azurite.DirEnv) {
		t.Fatalf("Dir() error = %v, want one naming %s", err, azurite.DirEnv)
	}
}

func TestStartNotInstalled(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/package.json", []byte("{}"), 0o644)
	_, err := azurite.Start(context.Background(), azurite.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "-install") {
		t.Fatalf("Start error = %v, want one saying how to install", err)
	}
}

func processID(t *testing.T, inst *azurite.Instance) int { t.Helper(); return azurite.ProcessID(inst) }
