package servicebus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// LocalSender sends to the local Functions host's in-process queue:
//
//	POST {Config.DevhostURL}/_devhost/queues/{queue}/messages
//	{"messageId":"...","body":"<body as a string>","scheduledEnqueueTimeUtc":"<RFC 3339>"}
//
// answered 201 Created, or 200 when the host saw the id within its
// duplicate-detection window (a duplicate is dropped, which is success).
type LocalSender struct {
	endpoint string
	client   *http.Client
	queue    string
	maxBytes int
	logger   *slog.Logger
}

// localMessage is the wire form of the local queue protocol.
type localMessage struct {
	MessageID               string            `json:"messageId"`
	Body                    string            `json:"body"`
	ScheduledEnqueueTimeUTC string            `json:"scheduledEnqueueTimeUtc,omitempty"`
	ApplicationProperties   map[string]string `json:"applicationProperties,omitempty"`
}

// NewLocalSender validates cfg.DevhostURL and returns a LocalSender.
func NewLocalSender(cfg Config) (*LocalSender, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.DevhostURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.Fragment != "" {
		return nil, configError("Config.DevhostURL %q is not a URL like http://127.0.0.1:7071", cfg.DevhostURL)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &LocalSender{
		endpoint: strings.TrimSuffix(u.String(), "/") + "/_devhost/queues/" + url.PathEscape(cfg.Queue) + "/messages",
		client:   client,
		queue:    cfg.Queue,
		maxBytes: cfg.MaxMessageBytes,
		logger:   cfg.Logger,
	}, nil
}

// Send posts m to the local host's queue.
func (s *LocalSender) Send(ctx context.Context, m dirsync.Message) error {
	if err := checkMessage(m, s.maxBytes); err != nil {
		return err
	}
	wire := localMessage{MessageID: m.ID, Body: string(m.Body)}
	if t := scheduled(m); t != nil {
		wire.ScheduledEnqueueTimeUTC = t.Format(time.RFC3339Nano)
	}
	body, err := json.Marshal(wire)
	if err != nil {
		return fmt.Errorf("servicebus: encode message %s: %w", m.ID, err)
	}
	op := fmt.Sprintf("send message %s to local queue %s", m.ID, s.queue)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("servicebus: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("servicebus: %s: %w", op, err)
		}
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: "local host: " + op + ": the local Functions host does not answer",
			Hint:    "check that the local host (make run) is running at the URL the handler was given"}
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode == http.StatusCreated:
		s.logger.Debug("queued message", "queue", s.queue, "id", m.ID, "notBefore", m.NotBefore)
		return nil
	case resp.StatusCode == http.StatusOK:
		s.logger.Debug("local queue dropped a duplicate message", "queue", s.queue, "id", m.ID)
		return nil
	}
	e := &dirsync.Error{Err: fmt.Errorf("POST %s: %s: %s", s.endpoint, resp.Status, bytes.TrimSpace(detail))}
	what := "local host: " + op
	switch {
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		e.Code, e.Message, e.Hint = dirsync.EINVALID, what+": the message is too large", "send less in one message"
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Code, e.Message, e.Hint = dirsync.ETHROTTLED, what+": the host is busy", "retry later"
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	case resp.StatusCode >= 500:
		e.Code, e.Message, e.Hint = dirsync.EUNAVAILABLE, fmt.Sprintf("%s: the host failed (%d)", what, resp.StatusCode), "retry later"
	case resp.StatusCode == http.StatusBadRequest:
		e.Code, e.Message, e.Hint = dirsync.EINVALID, fmt.Sprintf("%s: the host rejected the message: %s", what, oneLine(detail)), "check the message"
	default:
		e.Code, e.Message, e.Hint = dirsync.EINTERNAL, fmt.Sprintf("%s: unexpected answer %d", what, resp.StatusCode), "check that the local host and the handler are the same version"
	}
	return e
}

// Close has nothing to release; it is there to satisfy Client.
func (s *LocalSender) Close(context.Context) error { return nil }

func oneLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
