// Command graphsim runs the Microsoft Graph simulator (internal/graphsim)
// until SIGINT or SIGTERM: a generated tenant behind a loopback HTTPS server
// with the token endpoint, Graph v1.0 (users, groups, delta, photos) and the
// /_sim/ control API.
//
//	go run ./internal/cmd/graphsim -users 2000 -seed 7 -cert-out /tmp/graphsim.pem
//
// It prints "graph simulator: <Graph base URL>" once it listens. Point a
// client at that URL, at the authority host (the same URL with "/"), trust
// the certificate written by -cert-out, and use the credentials printed
// (tenant, client id; the secret is given with -client-secret).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/internal/graphsim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "graphsim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback; port 0 picks a free one)")
	users := fs.Int("users", 1000, "number of generated users")
	groups := fs.Int("groups", 0, "number of generated groups (0: a default set, -1: none)")
	seed := fs.Int64("seed", 1, "generator seed: the same seed gives the same tenant")
	pageSize := fs.Int("page-size", graphsim.DefaultPageSize, "objects per page when the client sends no Prefer: odata.maxpagesize")
	certOut := fs.String("cert-out", "", "write the server certificate (PEM) to this file so clients can trust it")
	tenant := fs.String("tenant", graphsim.DefaultTenantID, "tenant id the token endpoint accepts")
	clientID := fs.String("client-id", graphsim.DefaultClientID, "client id the token endpoint accepts")
	clientSecret := fs.String("client-secret", graphsim.DefaultClientSecret, "client secret the token endpoint accepts")
	throttle := fs.Int("requests-per-10s", 0, "per-application request budget per 10 s; 0 turns throttling off")
	latency := fs.Duration("page-latency", 0, "extra latency per page")
	verbose := fs.Bool("v", false, "log every request (method, route, status)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every setting is a flag (see -h)", fs.Args())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	start := time.Now()
	sim, err := graphsim.New(graphsim.Config{
		Users: *users, Groups: *groups, Seed: *seed, PageSize: *pageSize,
		TenantID: *tenant, ClientID: *clientID, ClientSecret: *clientSecret,
		RequestsPer10s: *throttle, PageLatency: *latency, Logger: logger,
	})
	if err != nil {
		return err
	}
	if err := sim.Start(*addr); err != nil {
		return err
	}
	defer sim.Close()
	if *certOut != "" {
		if err := os.WriteFile(*certOut, sim.CertificatePEM(), 0o644); err != nil {
			return fmt.Errorf("write the certificate to -cert-out %s: %w", *certOut, err)
		}
	}
	fmt.Fprintf(stdout, "graph simulator: %s\n", sim.GraphBaseURL())
	fmt.Fprintf(stdout, "authority host: %s  tenant: %s  client id: %s\n", sim.AuthorityHost(), *tenant, *clientID)
	fmt.Fprintf(stdout, "control API: %s/_sim/  (%d users generated in %s)\n", sim.URL(), *users, time.Since(start).Round(time.Millisecond))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	logger.Info("graph simulator stopping")
	return nil
}
