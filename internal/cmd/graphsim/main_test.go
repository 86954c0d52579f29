package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/testenv"
)

func TestRunServesUntilSignal(t *testing.T) {
	certFile := filepath.Join(t.TempDir(), "graphsim.pem")
	var stdout, stderr testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-users", "50", "-seed", "3", "-cert-out", certFile}, &stdout, &stderr)
	}()

	var base string
	testenv.Eventually(10*time.Second, 20*time.Millisecond, func() bool {
		line, ok := strings.CutPrefix(stdout.String(), "graph simulator: ")
		if ok {
			base, _, _ = strings.Cut(line, "\n")
		}
		return ok
	})
	if !strings.HasPrefix(base, "https://127.0.0.1:") || !strings.HasSuffix(base, "/v1.0") {
		t.Fatalf("no \"graph simulator: <url>\" line; stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatalf("-cert-out file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("-cert-out file holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(strings.TrimSuffix(base, "/v1.0") + "/_sim/users")
	if err != nil {
		t.Fatalf("control API through the written certificate: %v", err)
	}
	var users []map[string]any
	err = json.NewDecoder(resp.Body).Decode(&users)
	resp.Body.Close()
	if err != nil || len(users) != 50 {
		t.Fatalf("GET /_sim/users: %d users, %v", len(users), err)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after SIGINT", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop on SIGINT")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-users", "-3"}, {"-page-size", "5000"}, {"extra"}, {"-nope"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("run(%q) accepted bad arguments", args)
		}
	}
}
