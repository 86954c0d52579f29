// Command handler is entrasync's Azure Functions custom handler: the
// executable host.json names. The Functions host (or internal/devhost
// locally) starts it with FUNCTIONS_CUSTOMHANDLER_PORT and the App Settings in
// its environment, and calls it over HTTP: SyncTimer and SyncWorker in the
// payload form, the API functions as proxied requests.
//
// main stays thin; Main does the wiring and is what the tests drive.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/internal/api"
	"github.com/entrasync/entrasync/internal/blob"
	"github.com/entrasync/entrasync/internal/console"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/funcproto"
	"github.com/entrasync/entrasync/internal/graph"
	"github.com/entrasync/entrasync/internal/servicebus"
	"github.com/entrasync/entrasync/internal/table"
)

// version is stamped at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		// The host shows the handler's output: say exactly which setting to fix.
		logger.Error("invalid configuration; fix these app settings and restart", "err", err.Error())
		os.Exit(2)
	}
	logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if cfg.CPUProfile != "" {
		stopProfile, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			logger.Error("ENTRASYNC_CPU_PROFILE: the CPU profile cannot be written; unset it or point it at a writable file", "err", err.Error())
			os.Exit(2)
		}
		defer stopProfile()
	}
	m := NewMain(cfg, logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		logger.Error("handler failed to start", "err", err.Error())
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		logger.Error("shutdown", "err", err.Error())
	}
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// Main is the wired program.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Addr overrides the listen address (tests); default from
	// FUNCTIONS_CUSTOMHANDLER_PORT.
	Addr string

	Engine *dirsync.Engine
	store  *table.Store
	logs   *blob.LogStore
	photos *blob.PhotoStore
	queue  interface {
		dirsync.Queue
		Close(context.Context) error
	}
	server   *http.Server
	listener net.Listener
	served   chan error
}

// NewMain returns a Main for cfg.
func NewMain(cfg Config, logger *slog.Logger) *Main {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Main{Config: cfg, Logger: logger}
}

// Run builds the adapters and the engine and starts serving. It returns once
// the handler listens (the host waits for that), or with the first error.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	var err error
	m.store, err = table.New(table.Config{
		ConnectionString: cfg.StorageConnectionString, AccountURL: accountURL(cfg.StorageAccountName, "table"),
		UseManagedIdentity: cfg.StorageAccountName != "", ClientID: cfg.StorageIdentityClientID,
		TablePrefix: cfg.TablePrefix, Logger: m.Logger.With("component", "table"),
	})
	if err != nil {
		return fmt.Errorf("table storage: %w", err)
	}
	m.logs, err = blob.New(blob.Config{
		ConnectionString: cfg.StorageConnectionString, AccountURL: accountURL(cfg.StorageAccountName, "blob"),
		UseManagedIdentity: cfg.StorageAccountName != "", ClientID: cfg.StorageIdentityClientID,
		Container: cfg.LogContainer, Logger: m.Logger.With("component", "blob"),
	})
	if err != nil {
		return fmt.Errorf("blob storage: %w", err)
	}
	m.photos, err = blob.NewPhotos(blob.Config{
		ConnectionString: cfg.StorageConnectionString, AccountURL: accountURL(cfg.StorageAccountName, "blob"),
		UseManagedIdentity: cfg.StorageAccountName != "", ClientID: cfg.StorageIdentityClientID,
		Container: cfg.PhotoContainer, Logger: m.Logger.With("component", "blob"),
	})
	if err != nil {
		return fmt.Errorf("blob storage (photos): %w", err)
	}
	m.queue, err = servicebus.New(servicebus.Config{
		ConnectionString: cfg.ServiceBusConnection, Namespace: cfg.ServiceBusNamespace,
		UseManagedIdentity: cfg.ServiceBusUseManagedIdentity, ClientID: cfg.ServiceBusIdentityClientID,
		DevhostURL: cfg.DevhostURL, Queue: servicebus.DefaultQueue, Logger: m.Logger.With("component", "servicebus"),
	})
	if err != nil {
		return fmt.Errorf("service bus: %w", serviceBusSettings.name(err))
	}
	source, graphErr := m.graphSource()
	m.Engine = &dirsync.Engine{
		Store: m.store, Logs: m.logs, Queue: m.queue, Source: source, Photos: m.photos,
		Logger: m.Logger.With("component", "engine"), MaxDeliveries: cfg.MaxDeliveries,
	}

	apiHandler, err := api.New(api.Config{
		Service: m.Engine, Logger: m.Logger.With("component", "api"), Version: version,
		Health:           m.health(graphErr),
		AdminKeyHashes:   cfg.AdminKeyHashes,
		SupportKeyHashes: cfg.SupportKeyHashes,
		TrustEasyAuth:    cfg.TrustEasyAuth,
		// groupScope ids are checked against Entra before settings are saved.
		Groups: source,
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	router := funcproto.NewRouter(m.Logger.With("component", "funcproto"))
	router.Timer("SyncTimer", "timer", m.syncTimer)
	router.Queue("SyncWorker", "message", m.syncWorker)
	consoleHandler := console.New()
	// The Console function (anonymous) gets only the console's static
	// files; everything else is the API, behind the Api function's key.
	router.Proxy(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if console.IsConsolePath(r.URL.Path) {
			consoleHandler.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	}))
	// Payload-form HTTP too, should proxying ever be turned off.
	router.HTTP("Health", apiHandler)
	router.HTTP("Api", apiHandler)
	router.HTTP("Console", consoleHandler)

	addr := m.Addr
	if addr == "" {
		if addr, err = funcproto.ListenAddr(); err != nil {
			return err
		}
	}
	m.listener, err = net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	m.server = &http.Server{Handler: router, ReadHeaderTimeout: 30 * time.Second}
	m.served = make(chan error, 1)
	go func() { m.served <- m.server.Serve(m.listener) }()
	m.Logger.Info("handler listening", "addr", m.listener.Addr().String(), "version", version)
	return nil
}

// URL is the handler's base URL once Run returned.
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Close stops serving, letting in-flight invocations finish.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs = append(errs, m.server.Shutdown(ctx))
		if err := <-m.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if m.queue != nil {
		errs = append(errs, m.queue.Close(context.Background()))
	}
	return errors.Join(errs...)
}

func accountURL(account, service string) string {
	if account == "" {
		return ""
	}
	return fmt.Sprintf("https://%s.%s.core.windows.net/", account, service)
}

// graphSource builds the Graph adapter. A configuration error does not stop
// the handler: the API stays up and says what to fix, and runs fail with it.
func (m *Main) graphSource() (dirsync.Source, error) {
	cfg := m.Config
	gc := graph.Config{
		TenantID: cfg.GraphTenantID, ClientID: cfg.GraphClientID, ClientSecret: cfg.GraphClientSecret,
		CertificatePath: cfg.GraphCertificatePath, CertificatePassword: cfg.GraphCertificatePassword,
		UseManagedIdentity: cfg.GraphUseManagedIdentity, ManagedIdentityClientID: cfg.GraphIdentityClientID,
		AuthorityHost: cfg.GraphAuthorityHost, GraphBaseURL: cfg.GraphBaseURL,
		PageSize: cfg.GraphPageSize, MaxInCallWait: cfg.GraphMaxInCallWait, RequestTimeout: cfg.GraphRequestTimeout,
		Logger: m.Logger.With("component", "graph"),
	}
	if cfg.GraphTrustedCAFile != "" {
		pem, err := os.ReadFile(cfg.GraphTrustedCAFile)
		if err != nil {
			return brokenSource{err: fmt.Errorf("GRAPH_TRUSTED_CA_FILE: %w", err)}, err
		}
		gc.TrustedCAPEM = pem
	}
	src, err := graph.New(gc)
	if err != nil {
		err = graphSettings.name(err)
		m.Logger.Error("Microsoft Graph is not configured; syncs will fail until it is", "err", err.Error())
		return brokenSource{err: err}, err
	}
	return src, nil
}

// health reports what the handler depends on, for GET /api/health.
func (m *Main) health(graphErr error) func(ctx context.Context) map[string]error {
	return func(ctx context.Context) map[string]error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return map[string]error{
			"table": m.store.Ping(ctx),
			"blob":  m.logs.Ping(ctx),
			"graph": graphErr,
		}
	}
}

func (m *Main) syncTimer(ctx context.Context, inv *funcproto.Invocation, t funcproto.TimerInfo) error {
	run, err := m.Engine.Tick(ctx)
	if err != nil {
		inv.Logger.Error("scheduled sync could not start", "err", err.Error(), "code", string(dirsync.ErrorCode(err)))
		return err
	}
	if run != nil {
		inv.Logger.Info("scheduled sync started", "run", run.ID, "mode", run.Mode, "pastDue", t.IsPastDue)
	} else {
		inv.Logger.Debug("timer tick: nothing due", "pastDue", t.IsPastDue)
	}
	return nil
}

func (m *Main) syncWorker(ctx context.Context, inv *funcproto.Invocation, msg funcproto.ServiceBusMessage) error {
	err := m.Engine.HandleWork(ctx, msg.Body, dirsync.Delivery{MessageID: msg.MessageID, Count: msg.DeliveryCount})
	if err != nil {
		// The host abandons the message; Service Bus redelivers it and
		// dead-letters it after the max delivery count.
		inv.Logger.Warn("work item failed", "err", err.Error(), "code", string(dirsync.ErrorCode(err)),
			"messageId", msg.MessageID, "delivery", msg.DeliveryCount)
	}
	return err
}

// brokenSource stands in for Graph when its configuration is invalid: every
// call fails with the configuration error, so runs fail saying what to fix.
type brokenSource struct{ err error }

func (b brokenSource) fail() error {
	return &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Message: "Microsoft Graph is not configured: " + b.err.Error(),
		Hint: "Set the GRAPH_* app settings (tenant id, client id and a credential) and restart the function app.", Err: b.err}
}

func (b brokenSource) UsersDelta(context.Context, dirsync.DeltaRequest) (dirsync.UserPage, error) {
	return dirsync.UserPage{}, b.fail()
}
func (b brokenSource) GroupsDelta(context.Context, dirsync.GroupDeltaRequest) (dirsync.GroupPage, error) {
	return dirsync.GroupPage{}, b.fail()
}
func (b brokenSource) GroupTransitiveMembers(context.Context, string, string) (dirsync.MemberPage, error) {
	return dirsync.MemberPage{}, b.fail()
}
func (b brokenSource) Group(context.Context, string) (dirsync.SourceGroup, error) {
	return dirsync.SourceGroup{}, b.fail()
}
func (b brokenSource) User(context.Context, string, []string) (dirsync.SourceUser, error) {
	return dirsync.SourceUser{}, b.fail()
}
func (b brokenSource) UserPhoto(context.Context, string) (dirsync.PhotoInfo, error) {
	return dirsync.PhotoInfo{}, b.fail()
}
func (b brokenSource) UserPhotoData(context.Context, string, int64) ([]byte, error) {
	return nil, b.fail()
}
func (b brokenSource) UserPhotos(context.Context, []string) (map[string]dirsync.PhotoInfo, map[string]error, error) {
	return nil, nil, b.fail()
}
