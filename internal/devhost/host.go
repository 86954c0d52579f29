package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Host. The zero value of each field picks the default
// given in its comment.
type Options struct {
	// AppDir is the function app's root: host.json, local.settings.json
	// (else local.settings.sample.json) and the function folders. Default ".".
	AppDir string
	// Executable overrides host.json's customHandler.description
	// .defaultExecutablePath (locally the handler is built to another place).
	Executable string
	// Addr is the listen address. Default "127.0.0.1:7071"; port 0 picks a
	// free port (tests).
	Addr string
	// Keys are the function keys. Without a master key, random keys are
	// generated (see Host.Keys).
	Keys Keys
	// Settings add to or override the Values of local.settings.json.
	Settings map[string]string
	// DisableTimers stops timers from firing on their schedule (and on
	// startup); they can still be fired with Invoke or the admin API.
	DisableTimers bool
	// MaxDeliveryCount is how many deliveries a message gets before it is
	// dead-lettered. Default 10, as Service Bus.
	MaxDeliveryCount int
	// DuplicateDetectionWindow drops a message whose MessageId was sent within
	// it. Default 10 minutes, as Service Bus.
	DuplicateDetectionWindow time.Duration
	// RedeliveryDelay is how long an abandoned message waits before its next
	// delivery. Default 1s.
	RedeliveryDelay time.Duration
	// LockDuration is the queue's message lock duration. A delivery keeps
	// its lock for LockDuration plus host.json's maxAutoLockRenewalDuration;
	// past that the lock is lost and the message is delivered again. Default
	// 1 minute, as Service Bus.
	LockDuration time.Duration
	// MaxMessageSize caps body plus properties. Default 256 KiB (Standard).
	MaxMessageSize int
	// FunctionTimeout overrides host.json's functionTimeout: a queue or timer
	// invocation running longer fails (the message is abandoned).
	FunctionTimeout time.Duration
	// StartTimeout is how long the handler has to listen. Default 30s, as the
	// host.
	StartTimeout time.Duration
	// RestartDelay is the pause before restarting a handler that died.
	// Default 1s; it grows while restarts keep failing.
	RestartDelay time.Duration
	// HandlerOutput receives the handler's stdout and stderr. Default
	// os.Stderr.
	HandlerOutput io.Writer
	// Logger receives the devhost's logs. Default: discarded.
	Logger *slog.Logger
}

// Host is a local Azure Functions host for a custom handler app.
type Host struct {
	opts      Options
	log       *slog.Logger
	cfg       *appConfig
	routes    *routeTable
	keys      Keys
	funcs     map[string]*Function // by lower-case name
	timers    map[string]*timerRunner
	namespace string
	client    *http.Client
	changed   *notifier

	qmu    sync.Mutex
	queues map[string]*queue

	proc   *handlerProc
	ln     net.Listener
	srv    *http.Server
	url    string
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup

	startOnce sync.Once
	closeOnce sync.Once
}

type timerRunner struct {
	fn    *Function
	sched schedule
	run   sync.Mutex // a timer never runs twice at once, like the host's singleton lock
	mu    sync.Mutex
	st    timerState
}

// New reads the app and prepares a Host; Start runs it.
func New(opts Options) (*Host, error) {
	if opts.AppDir == "" {
		opts.AppDir = "."
	}
	dir, err := filepath.Abs(opts.AppDir)
	if err != nil {
		return nil, fmt.Errorf("app directory %q: %v", opts.AppDir, err)
	}
	opts.AppDir = dir
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:7071"
	}
	if opts.MaxDeliveryCount == 0 {
		opts.MaxDeliveryCount = 10
	}
	if opts.MaxDeliveryCount < 1 {
		return nil, fmt.Errorf("MaxDeliveryCount must be at least 1, got %d", opts.MaxDeliveryCount)
	}
	if opts.DuplicateDetectionWindow == 0 {
		opts.DuplicateDetectionWindow = 10 * time.Minute
	}
	if opts.RedeliveryDelay == 0 {
		opts.RedeliveryDelay = time.Second
	}
	if opts.LockDuration == 0 {
		opts.LockDuration = time.Minute
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = 256 << 10
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.RestartDelay == 0 {
		opts.RestartDelay = time.Second
	}
	if opts.HandlerOutput == nil {
		opts.HandlerOutput = os.Stderr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DuplicateDetectionWindow < 0 || opts.RedeliveryDelay < 0 || opts.StartTimeout < 0 || opts.RestartDelay < 0 || opts.FunctionTimeout < 0 || opts.LockDuration < 0 {
		return nil, errors.New("durations in Options must not be negative")
	}

	cfg, err := loadConfig(opts.AppDir, opts.Executable, opts.Settings, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if opts.FunctionTimeout > 0 {
		cfg.functionTimeout = opts.FunctionTimeout
	}
	for _, w := range cfg.warnings {
		opts.Logger.Warn("devhost: " + w)
	}

	keys := opts.Keys
	if keys.Master == "" {
		gen, err := GenerateKeys()
		if err != nil {
			return nil, err
		}
		keys.Master = gen.Master
		if len(keys.Host) == 0 {
			keys.Host = gen.Host
		}
	}
	if err := keys.validate(); err != nil {
		return nil, fmt.Errorf("keys: %v", err)
	}

	routes, err := newRouteTable(cfg.routePrefix, cfg.functions)
	if err != nil {
		return nil, err
	}
	loc := time.UTC
	if tz := cfg.values["WEBSITE_TIME_ZONE"]; tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("WEBSITE_TIME_ZONE=%q is not a time zone name the system knows (use an IANA name such as Europe/Paris): %v", tz, err)
		}
	}

	h := &Host{
		opts:    opts,
		log:     opts.Logger,
		cfg:     cfg,
		routes:  routes,
		keys:    keys,
		funcs:   map[string]*Function{},
		timers:  map[string]*timerRunner{},
		queues:  map[string]*queue{},
		changed: newNotifier(),
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		namespace: "devhost.servicebus.localhost",
	}
	for _, fn := range cfg.functions {
		h.funcs[strings.ToLower(fn.Name)] = fn
		switch fn.Kind {
		case KindTimer:
			s, err := parseSchedule(fn.Schedule, loc)
			if err != nil {
				return nil, fmt.Errorf("function %s: %v", fn.Name, err)
			}
			h.timers[strings.ToLower(fn.Name)] = &timerRunner{fn: fn, sched: s}
		case KindQueue:
			h.queue(fn.QueueName, true)
			if conn, ok := cfg.values[fn.Connection]; ok {
				h.namespace = serviceBusNamespace(conn)
			}
		}
	}
	return h, nil
}

// Functions returns the app's functions, sorted by name.
func (h *Host) Functions() []Function {
	var out []Function
	for _, fn := range h.cfg.functions {
		out = append(out, *fn)
	}
	slices.SortFunc(out, func(a, b Function) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Keys returns the keys the host checks (generated ones included).
func (h *Host) Keys() Keys { return h.keys }

// URL returns the host's base URL, e.g. http://127.0.0.1:7071 (after Start).
func (h *Host) URL() string { return h.url }

// queue returns the named queue, creating it. Queue names are
// case-insensitive in Service Bus.
func (h *Host) queue(name string, create bool) *queue {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	key := strings.ToLower(name)
	q := h.queues[key]
	if q == nil && create {
		q = &queue{
			name: name, maxDelivery: h.opts.MaxDeliveryCount, dupWindow: h.opts.DuplicateDetectionWindow,
			redelivery: h.opts.RedeliveryDelay, maxSize: h.opts.MaxMessageSize,
			lockLimit: h.opts.LockDuration + h.cfg.lockRenewal,
			changed:   h.changed, seen: map[string]time.Time{},
		}
		h.queues[key] = q
	}
	return q
}

// Start listens, starts the handler and waits until it answers, then starts
// the queue consumers and timers. ctx bounds the startup only.
func (h *Host) Start(ctx context.Context) error {
	err := errors.New("devhost: Start called twice")
	h.startOnce.Do(func() { err = h.start(ctx) })
	return err
}

func (h *Host) start(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.opts.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %v (is another host running? choose another port)", h.opts.Addr, err)
	}
	h.ln = ln
	h.url = "http://" + ln.Addr().String()
	h.bg, h.stopBg = context.WithCancel(context.Background())
	env := os.Environ()
	for k, v := range h.cfg.values {
		env = append(env, k+"="+v)
	}
	env = append(env,
		"ENTRASYNC_DEVHOST_URL="+h.url,
		"FUNCTIONS_CUSTOMHANDLER_WORKER_ID="+newUUID(),
		"FUNCTIONS_APP_ROOT_PATH="+h.cfg.dir,
	)
	h.proc = newHandlerProc(h.cfg.executable, h.cfg.args, h.cfg.workingDir, env, h.opts.HandlerOutput, h.log, h.opts.StartTimeout, h.opts.RestartDelay)
	// Serve before the handler starts: it may call the queue API at once.
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go h.srv.Serve(ln)
	if err := h.proc.start(ctx); err != nil {
		h.stopBg()
		h.srv.Close()
		return err
	}
	h.log.Info("devhost: started", "url", h.url, "handler", h.cfg.executable, "functions", len(h.cfg.functions), "proxying", h.cfg.proxying)

	for _, fn := range h.cfg.functions {
		if fn.Kind != KindQueue {
			continue
		}
		q := h.queue(fn.QueueName, true)
		deliver := h.deliverFunc(fn)
		for i := 0; i < h.cfg.maxConcurrent; i++ {
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				q.consume(h.bg, deliver, time.Now, func(m *message) {
					h.log.Warn("devhost: a delivery lost its message lock; the message is delivered again while it still runs",
						"function", fn.Name, "message_id", m.ID, "delivery_count", m.deliveryCount, "lock_limit", q.lockLimit)
				})
			}()
		}
	}
	for _, tr := range h.timers {
		tr.mu.Lock()
		tr.st = timerState{next: tr.sched.Next(time.Now())}
		tr.mu.Unlock()
		if h.opts.DisableTimers {
			continue
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.runTimer(h.bg, tr)
		}()
	}
	return nil
}

// Close stops timers and consumers, the handler and the server.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		if h.stopBg == nil {
			return
		}
		// The server goes first, so no admin call starts work after the
		// consumers and timers are told to stop.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			h.srv.Close()
		}
		h.stopBg()
		h.wg.Wait()
		h.proc.shutdown(5 * time.Second)
		h.client.CloseIdleConnections()
		h.log.Info("devhost: stopped")
	})
	return nil
}

func (h *Host) runTimer(ctx context.Context, tr *timerRunner) {
	if tr.fn.RunOnStartup {
		h.fireTimer(ctx, tr, time.Time{}, true, "runOnStartup")
	}
	for {
		tr.mu.Lock()
		due := tr.st.next
		tr.mu.Unlock()
		t := time.NewTimer(time.Until(due))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		h.fireTimer(ctx, tr, due, true, "Timer fired at "+time.Now().UTC().Format(time.RFC3339))
	}
}

// fireTimer invokes a timer function. scheduled runs (ticks, runOnStartup)
// move the schedule status on; manual ones do not, as with the host.
func (h *Host) fireTimer(ctx context.Context, tr *timerRunner, due time.Time, scheduled bool, reason string) error {
	tr.run.Lock()
	defer tr.run.Unlock()
	now := time.Now()
	tr.mu.Lock()
	info, next := tick(tr.sched, tr.st, due, now)
	tr.mu.Unlock()
	if !scheduled {
		info.isPastDue = false
	}
	_, err := h.invoke(ctx, tr.fn, reason, timerPayload(tr.fn, info, now))
	if scheduled {
		tr.mu.Lock()
		tr.st = next
		tr.mu.Unlock()
	}
	return err
}

func (h *Host) deliverFunc(fn *Function) func(ctx context.Context, m *message) error {
	return func(ctx context.Context, m *message) error {
		reason := fmt.Sprintf("New ServiceBus message detected on '%s' (MessageId=%s, DeliveryCount=%d)", fn.QueueName, m.ID, m.deliveryCount)
		_, err := h.invoke(ctx, fn, reason, serviceBusPayload(fn, m, h.namespace, time.Now()))
		return err
	}
}

// maxResponse bounds what is read of a handler's answer.
const maxResponse = 110 << 20

// invoke POSTs a payload invocation to the handler and returns its answer; a
// non-2xx answer, a timeout or a dropped connection is an error (the
// invocation failed).
func (h *Host) invoke(ctx context.Context, fn *Function, reason string, payload any) (*handlerResponse, error) {
	invID := newUUID()
	log := h.log.With("function", fn.Name, "invocation_id", invID)
	log.Info("executing function", "reason", reason)
	start := time.Now()
	resp, err := h.post(ctx, fn, invID, payload)
	took := time.Since(start).Round(time.Millisecond)
	if resp != nil {
		for _, line := range resp.Logs {
			log.Info(line)
		}
	}
	if err != nil {
		log.Error("executed function: failed", "duration", took, "err", err)
		return resp, err
	}
	log.Info("executed function: succeeded", "duration", took)
	return resp, nil
}

func (h *Host) post(ctx context.Context, fn *Function, invID string, payload any) (*handlerResponse, error) {
	if h.proc == nil {
		return nil, errors.New("the devhost is not started: call Start first")
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encoding the payload: %v", err)
	}
	if t := h.cfg.functionTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	base, err := h.proc.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+fn.Name, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	h.invocationHeaders(req.Header, invID)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := h.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("timeout: the function ran longer than functionTimeout %s", h.cfg.functionTimeout)
		}
		return nil, fmt.Errorf("calling the handler: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("reading the handler's answer: %v", err)
	}
	var hr handlerResponse
	decodeErr := json.Unmarshal(raw, &hr)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &hr, fmt.Errorf("the handler answered %s: %s", resp.Status, snippet(raw))
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("the handler's answer is not {\"Outputs\",\"Logs\",\"ReturnValue\"}: %v: %s", decodeErr, snippet(raw))
	}
	return &hr, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func (h *Host) invocationHeaders(hd http.Header, invID string) {
	hd.Set("X-Azure-Functions-InvocationId", invID)
	hd.Set("X-Azure-Functions-HostVersion", HostVersion)
	hd.Set("User-Agent", "Azure-Functions-Host/"+HostVersion)
}

// Invoke runs a timer or Service Bus function now and waits for it, like the
// admin API (POST /admin/functions/{name}). For a Service Bus function,
// input is the message body (delivered once, outside the queue).
func (h *Host) Invoke(ctx context.Context, name, input string) error {
	fn := h.funcs[strings.ToLower(name)]
	if fn == nil {
		return fmt.Errorf("no function named %q; the app has %s", name, h.functionNames())
	}
	switch fn.Kind {
	case KindTimer:
		return h.fireTimer(ctx, h.timers[strings.ToLower(fn.Name)], time.Time{}, false, "This function was programmatically called via the host APIs.")
	case KindQueue:
		now := time.Now()
		m := &message{Message: Message{ID: newUUID(), Body: []byte(input)}, enqueued: now, deliveryCount: 1, lockToken: newUUID()}
		_, err := h.invoke(ctx, fn, "This function was programmatically called via the host APIs.", serviceBusPayload(fn, m, h.namespace, now))
		return err
	default:
		return fmt.Errorf("function %s is an HTTP function: call it at its route", fn.Name)
	}
}

func (h *Host) functionNames() string {
	var names []string
	for _, fn := range h.cfg.functions {
		names = append(names, fn.Name)
	}
	if len(names) == 0 {
		return "no functions"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Send puts a message on a queue, as the handler does through
// POST /_devhost/queues/{queue}/messages.
func (h *Host) Send(queueName string, m Message) (SendResult, error) {
	if err := validQueueName(queueName); err != nil {
		return SendResult{}, err
	}
	q := h.queue(queueName, false)
	if q == nil {
		q = h.queue(queueName, true)
		h.log.Warn("devhost: created a queue no function listens to; its messages will wait", "queue", queueName)
	}
	if len(m.ID) > 128 {
		return SendResult{}, fmt.Errorf("messageId is %d characters; Service Bus allows at most 128", len(m.ID))
	}
	return q.send(m, time.Now())
}

func validQueueName(name string) error {
	if name == "" || len(name) > 260 {
		return fmt.Errorf("queue name %q must be 1 to 260 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
			return fmt.Errorf("queue name %q may hold only letters, digits, '-', '.', '_' and '~'", name)
		}
	}
	return nil
}

// QueueCounts returns a queue's counts; ok is false for an unknown queue.
func (h *Host) QueueCounts(queueName string) (QueueCounts, bool) {
	q := h.queue(queueName, false)
	if q == nil {
		return QueueCounts{}, false
	}
	return q.counts(time.Now()), true
}

// DeadLetters returns a queue's dead-lettered messages, oldest first.
func (h *Host) DeadLetters(queueName string) []DeadLetter {
	q := h.queue(queueName, false)
	if q == nil {
		return nil
	}
	return q.deadLetters()
}

// Idle reports whether no queue has a message to deliver or in delivery.
// Scheduled messages that are not yet due count only with includeScheduled.
func (h *Host) Idle(includeScheduled bool) bool {
	h.qmu.Lock()
	qs := make([]*queue, 0, len(h.queues))
	for _, q := range h.queues {
		qs = append(qs, q)
	}
	h.qmu.Unlock()
	now := time.Now()
	for _, q := range qs {
		if !q.idle(now, includeScheduled) {
			return false
		}
	}
	return true
}

// WaitIdle waits until Idle(includeScheduled) or ctx ends.
func (h *Host) WaitIdle(ctx context.Context, includeScheduled bool) error {
	for {
		wake := h.changed.wait()
		if h.Idle(includeScheduled) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the queues to be idle: %w", ctx.Err())
		case <-wake:
		case <-time.After(100 * time.Millisecond): // a redelivery delay may end without a change
		}
	}
}
