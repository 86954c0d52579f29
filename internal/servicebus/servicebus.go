// Package servicebus implements dirsync.Queue: it sends the sync's work items
// to the "sync-work" queue. In Azure that is Service Bus, through the
// azservicebus SDK (Sender); under the local Functions host (internal/devhost)
// it is the host's in-process queue, reached over HTTP (LocalSender). New
// picks one from the configuration, the way the handler finds itself run.
//
// Both map a dirsync.Message the same way: ID becomes the MessageId (which
// the queue uses for duplicate detection), NotBefore the scheduled enqueue
// time, and the body is sent as JSON (content type application/json).
//
// Testing: LocalSender is tested against an HTTP server checking the exact
// protocol. Sender cannot be tested end to end here (there is no Service Bus
// emulator on these machines); its configuration, message conversion and
// error translation are unit-tested, and a closed port is checked to fail as
// EUNAVAILABLE.
package servicebus

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

const (
	// DefaultQueue is the queue the SyncWorker function listens on.
	DefaultQueue = "sync-work"
	// DefaultMaxMessageBytes is the Standard tier's message size limit.
	DefaultMaxMessageBytes = 256 * 1024
	// maxMessageIDLen is Service Bus's limit on MessageId.
	maxMessageIDLen = 128
)

// Config says where messages go. With DevhostURL set, to the local host;
// otherwise to Service Bus, by ConnectionString or by Namespace with an Azure
// AD identity. Configuration errors name the fields (Config.Namespace); the
// handler, which owns the app setting names, words them as settings.
type Config struct {
	// DevhostURL is the local host's URL, e.g. http://127.0.0.1:7071.
	DevhostURL string
	// ConnectionString is a Service Bus connection string.
	ConnectionString string
	// Namespace is the fully qualified namespace,
	// <namespace>.servicebus.windows.net.
	Namespace string
	// UseManagedIdentity authenticates with the managed identity only (the
	// host's <connection>__credential = managedidentity).
	UseManagedIdentity bool
	// ClientID picks a user-assigned managed identity.
	ClientID string
	// Queue defaults to "sync-work".
	Queue string
	// MaxMessageBytes caps the body (default 256 KiB, the Standard tier's
	// limit). Larger bodies fail with EINVALID before anything is sent.
	MaxMessageBytes int
	// MaxRetries is how often Sender retries a failed send: 0 means the
	// SDK's default (3, with backoff from 4 s), negative means none.
	MaxRetries int
	// HTTPClient is used by LocalSender; nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Logger receives send events at debug level; nil discards them.
	Logger *slog.Logger
}

// Client is a dirsync.Queue holding a connection that Close releases at
// shutdown.
type Client interface {
	dirsync.Queue
	Close(ctx context.Context) error
}

var (
	_ Client = (*Sender)(nil)
	_ Client = (*LocalSender)(nil)
)

// New returns a LocalSender when cfg.DevhostURL is set, otherwise a Service
// Bus Sender.
func New(cfg Config) (Client, error) {
	if cfg.DevhostURL != "" {
		return NewLocalSender(cfg)
	}
	return NewSender(cfg)
}

func (cfg *Config) defaults() error {
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if !validQueue(cfg.Queue) {
		return configError("queue name %q is not valid: use letters, digits, '.', '-' and '_' (at most 260)", cfg.Queue)
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxMessageBytes < 0 {
		return configError("MaxMessageBytes %d is negative", cfg.MaxMessageBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func validQueue(s string) bool {
	if s == "" || len(s) > 260 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func configError(format string, args ...any) error {
	return dirsync.Errorf(dirsync.EINVALID, "queue config: "+format, args...).
		WithHint("fix the Service Bus app settings (the connection string, or the namespace for the managed identity) and restart the app")
}

// checkMessage applies the limits both senders share.
func checkMessage(m dirsync.Message, maxBytes int) error {
	switch {
	case m.ID == "":
		return dirsync.Errorf(dirsync.EINVALID, "queue message has no ID").
			WithHint("give every message an ID; the queue uses it to drop duplicates")
	case len(m.ID) > maxMessageIDLen:
		return dirsync.Errorf(dirsync.EINVALID, "queue message ID is %d characters long; the limit is %d", len(m.ID), maxMessageIDLen).
			WithHint("use a shorter message ID")
	case !utf8.ValidString(m.ID):
		return dirsync.Errorf(dirsync.EINVALID, "queue message ID is not valid UTF-8").WithHint("use a printable message ID")
	case len(m.Body) > maxBytes:
		return dirsync.Errorf(dirsync.EINVALID, "queue message %s is %d bytes; the queue takes at most %d", m.ID, len(m.Body), maxBytes).
			WithHint("send less in one message, or store the data and send a reference")
	case !utf8.Valid(m.Body):
		// The Functions host hands the body to the handler as a string.
		return dirsync.Errorf(dirsync.EINVALID, "queue message %s has a body that is not UTF-8 text", m.ID).
			WithHint("send JSON")
	}
	return nil
}

// scheduled returns the enqueue time for m, or nil for "now".
func scheduled(m dirsync.Message) *time.Time {
	if m.NotBefore.IsZero() {
		return nil
	}
	t := m.NotBefore.UTC()
	return &t
}

// checkConnectionString checks a Service Bus connection string without ever
// quoting it (it holds the key). Keys match without regard to case, as the
// SDK matches them.
func checkConnectionString(cs string) error {
	fields, err := azure.ParseConnectionString(cs)
	if err != nil {
		return configError("Config.ConnectionString is malformed: %v", err)
	}
	endpoint := fields.ValueFold("Endpoint")
	u, err := url.Parse(endpoint)
	if endpoint == "" || err != nil || u.Scheme != "sb" || u.Host == "" {
		return configError("Config.ConnectionString has no Endpoint=sb://<namespace>.servicebus.windows.net/")
	}
	hasKey := fields.ValueFold("SharedAccessKeyName") != "" && fields.ValueFold("SharedAccessKey") != ""
	if !hasKey && fields.ValueFold("SharedAccessSignature") == "" {
		return configError("Config.ConnectionString has no SharedAccessKeyName and SharedAccessKey (or SharedAccessSignature); copy it from the namespace's Shared access policies, or use Config.Namespace with a managed identity")
	}
	return nil
}
