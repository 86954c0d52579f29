// Command devhost runs the function app locally with internal/devhost, a
// small Azure Functions host for custom handlers:
//
//	devhost -app . -handler bin/handler            run the app on 127.0.0.1:7071
//	devhost -deadletters [-queue sync-work]        print a running host's dead letters
//	devhost -queues                                print a running host's queue counts
//
// Run `devhost -h` for every flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/internal/devhost"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// settingsFlag collects repeated -set KEY=VALUE.
type settingsFlag map[string]string

func (s settingsFlag) String() string { return "" }

func (s settingsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	s[k] = val
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devhost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		appDir        = fs.String("app", ".", "the function app `directory` (host.json, local.settings.json, functions/)")
		handler       = fs.String("handler", "", "the handler executable `path`; default: host.json's customHandler.description.defaultExecutablePath")
		port          = fs.Int("port", 7071, "the `port` to listen on (127.0.0.1)")
		keysFile      = fs.String("keys", "", "a JSON `file` of keys: {\"masterKey\",\"hostKeys\":{...},\"functionKeys\":{...}}")
		masterKey     = fs.String("master-key", "", "the master `key` (admin level and the admin API)")
		hostKey       = fs.String("host-key", "", "the host `key` named \"default\" (function level)")
		noTimers      = fs.Bool("no-timers", false, "do not fire timers on their schedule (POST /admin/functions/{name} still does)")
		maxDeliveries = fs.Int("max-delivery-count", 10, "deliveries before a message is dead-lettered")
		redelivery    = fs.Duration("redelivery-delay", time.Second, "pause before an abandoned message is delivered again")
		funcTimeout   = fs.Duration("function-timeout", 0, "override host.json's functionTimeout")
		verbose       = fs.Bool("v", false, "log debug details")
		deadletters   = fs.Bool("deadletters", false, "print the dead letters of -queue from a running host, then exit")
		queues        = fs.Bool("queues", false, "print the message counts of a running host's queues, then exit")
		queue         = fs.String("queue", "sync-work", "the `queue` for -deadletters")
		hostURL       = fs.String("url", "", "the running host's `URL` for -deadletters and -queues (default http://127.0.0.1:<port>)")
	)
	settings := settingsFlag{}
	fs.Var(settings, "set", "an app setting `KEY=VALUE` over local.settings.json (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "devhost: unexpected arguments %q; see devhost -h\n", fs.Args())
		return 2
	}
	base := *hostURL
	if base == "" {
		base = "http://127.0.0.1:" + strconv.Itoa(*port)
	}
	switch {
	case *deadletters:
		return printJSON(ctx, base+"/_devhost/queues/"+url.PathEscape(*queue)+"/deadletter", stdout, stderr)
	case *queues:
		return printJSON(ctx, base+"/_devhost/queues", stdout, stderr)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var keys devhost.Keys
	if *keysFile != "" {
		var err error
		if keys, err = devhost.LoadKeys(*keysFile); err != nil {
			fmt.Fprintf(stderr, "devhost: %v\n", err)
			return 1
		}
	}
	if *masterKey != "" {
		keys.Master = *masterKey
	}
	if *hostKey != "" {
		if keys.Host == nil {
			keys.Host = map[string]string{}
		}
		keys.Host["default"] = *hostKey
	}
	generated := keys.Master == ""

	h, err := devhost.New(devhost.Options{
		AppDir:           *appDir,
		Executable:       *handler,
		Addr:             "127.0.0.1:" + strconv.Itoa(*port),
		Keys:             keys,
		Settings:         settings,
		DisableTimers:    *noTimers,
		MaxDeliveryCount: *maxDeliveries,
		RedeliveryDelay:  *redelivery,
		FunctionTimeout:  *funcTimeout,
		HandlerOutput:    stderr,
		Logger:           logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "devhost: %v\n", err)
		return 1
	}
	if err := h.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "devhost: %v\n", err)
		h.Close()
		return 1
	}
	defer h.Close()

	fmt.Fprintf(stdout, "devhost: listening on %s\n", h.URL())
	for _, fn := range h.Functions() {
		switch fn.Kind {
		case devhost.KindHTTP:
			methods := "ALL"
			if len(fn.Methods) > 0 {
				methods = strings.Join(fn.Methods, ",")
			}
			fmt.Fprintf(stdout, "  %s: [%s] %s/api/%s (%s)\n", fn.Name, methods, h.URL(), fn.Route, fn.AuthLevel)
		case devhost.KindTimer:
			fmt.Fprintf(stdout, "  %s: timerTrigger %q\n", fn.Name, fn.Schedule)
		case devhost.KindQueue:
			fmt.Fprintf(stdout, "  %s: serviceBusTrigger queue %q\n", fn.Name, fn.QueueName)
		}
	}
	if generated {
		// Generated keys exist only in this process: show them once so the
		// developer can call function-level routes.
		k := h.Keys()
		fmt.Fprintf(stdout, "devhost: generated keys for this run: master %s, host (default) %s\n", k.Master, k.Host["default"])
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "devhost: stopping")
	return 0
}

// printJSON fetches a devhost queue API URL and prints its JSON.
func printJSON(ctx context.Context, u string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "devhost: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "devhost: no devhost answers at %s (is it running? pass -url or -port): %v\n", u, errors.Unwrap(err))
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintf(stderr, "devhost: reading %s: %v\n", u, err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "devhost: %s answered %s: %s\n", u, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		fmt.Fprintf(stderr, "devhost: %s did not answer JSON: %v\n", u, err)
		return 1
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(stdout, string(out))
	if list, ok := v.([]any); ok && len(list) == 0 && strings.HasSuffix(u, "/deadletter") {
		fmt.Fprintln(stderr, "devhost: no dead letters")
	}
	return 0
}
