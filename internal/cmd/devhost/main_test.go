package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/testenv"
)

// With CMD_TEST_HANDLER=1 the test binary is a trivial custom handler.
func TestMain(m *testing.M) {
	if os.Getenv("CMD_TEST_HANDLER") == "1" {
		http.ListenAndServe("127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"Outputs":{},"Logs":[],"ReturnValue":null}`))
		}))
		return
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeApp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"host.json":                      `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableProxyingHttpRequest":true}}`,
		"local.settings.json":            `{"IsEncrypted":false,"Values":{"FUNCTIONS_WORKER_RUNTIME":"custom","CMD_TEST_HANDLER":"1"}}`,
		"functions/Work/function.json":   `{"bindings":[{"name":"message","type":"serviceBusTrigger","direction":"in","queueName":"sync-work","connection":"ServiceBusConnection"}]}`,
		"functions/Health/function.json": `{"bindings":[{"name":"req","type":"httpTrigger","direction":"in","authLevel":"anonymous","methods":["get"],"route":"health"},{"name":"res","type":"http","direction":"out"}]}`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRunServesAndReports(t *testing.T) {
	dir := writeApp(t)
	port := strconv.Itoa(freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-app", dir, "-handler", os.Args[0], "-port", port, "-max-delivery-count", "1"}, stdout, stderr)
	}()

	listening := testenv.Eventually(30*time.Second, 20*time.Millisecond, func() bool {
		if strings.Contains(stdout.String(), "devhost: listening on http://127.0.0.1:"+port) {
			return true
		}
		select {
		case code := <-done:
			t.Fatalf("run exited with %d:\n%s\n%s", code, stdout, stderr)
		default:
		}
		return false
	})
	if !listening {
		t.Fatalf("no listening line:\n%s\n%s", stdout, stderr)
	}
	out := stdout.String()
	for _, want := range []string{
		"Health: [GET] http://127.0.0.1:" + port + "/api/health (anonymous)",
		`Work: serviceBusTrigger queue "sync-work"`,
		"devhost: generated keys for this run: master ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Client modes against the running host.
	var qout, qerr testenv.SyncBuffer
	if code := run(context.Background(), []string{"-queues", "-port", port}, &qout, &qerr); code != 0 {
		t.Fatalf("-queues exited %d: %s", code, qerr.String())
	}
	var counts []map[string]any
	if err := json.Unmarshal([]byte(qout.String()), &counts); err != nil || len(counts) != 1 || counts[0]["queue"] != "sync-work" {
		t.Errorf("-queues printed %s", qout.String())
	}
	var dout, derr testenv.SyncBuffer
	if code := run(context.Background(), []string{"-deadletters", "-url", "http://127.0.0.1:" + port}, &dout, &derr); code != 0 {
		t.Fatalf("-deadletters exited %d: %s", code, derr.String())
	}
	if strings.TrimSpace(dout.String()) != "[]" || !strings.Contains(derr.String(), "no dead letters") {
		t.Errorf("-deadletters printed %q / %q", dout.String(), derr.String())
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("run exited %d after the signal:\n%s", code, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop after the signal")
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-nope"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected arguments"},
		{[]string{"-set", "novalue"}, 2, "is not KEY=VALUE"},
		{[]string{"-app", "/nonexistent-dir"}, 1, "host.json not found"},
		{[]string{"-keys", "/nonexistent/keys.json"}, 1, "reading the keys file"},
		{[]string{"-deadletters", "-url", "http://127.0.0.1:1"}, 1, "no devhost answers"},
	}
	for _, tt := range tests {
		var out, errb testenv.SyncBuffer
		code := run(context.Background(), tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("run %q = %d, stderr %q; want %d mentioning %q", tt.args, code, errb.String(), tt.code, tt.want)
		}
	}
}
