// Package table implements dirsync.Store over Azure Table Storage (and
// Azurite) with the aztables SDK.
//
// Tables: the engine names tables logically ("users", "runs"); the Store maps
// each to Config.TablePrefix + CamelCase(name) ("entrasyncUsers") and creates a
// missing table the first time an operation finds it absent, then retries that
// operation once.
//
// Property types: string, bool, int64, float64 and time.Time round-trip
// exactly. int64 travels as an Edm.Int64 string and time.Time as Edm.DateTime
// (UTC, truncated to the service's 100 ns), so neither goes through a JSON
// float. int and int32 are accepted and read back as int64. A nil value or a
// zero time.Time is not stored at all (reads then see the property absent,
// which Entity.Time and friends report as the zero value). Numbers written by
// other tools without a type annotation (Edm.Int32) read back as float64.
//
// Errors follow the dirsync.Store contract; SDK errors never leave the package
// except as the Err of a *dirsync.Error.
package table

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

var (
	_ dirsync.Store        = (*Store)(nil)
	_ dirsync.BatchETagger = (*Store)(nil)
)

// DefaultTablePrefix is the TablePrefix used when Config leaves it empty.
const DefaultTablePrefix = "entrasync"

// Config says how to reach the storage account. Set exactly one of
// ConnectionString and AccountURL.
type Config struct {
	// ConnectionString is a storage connection string with an account key
	// (AzureWebJobsStorage style, or Azurite's development string).
	ConnectionString string
	// AccountURL is the table endpoint, https://<account>.table.core.windows.net/,
	// for identity-based access. The credential is DefaultAzureCredential, or
	// ManagedIdentityCredential when UseManagedIdentity is set.
	AccountURL string
	// UseManagedIdentity authenticates with the managed identity only
	// (the Functions setting <conn>__credential = managedidentity).
	UseManagedIdentity bool
	// ClientID picks a user-assigned managed identity (<conn>__clientId).
	ClientID string
	// TablePrefix starts every real table name: letters and digits, starting
	// with a letter, at most 40 characters. Default "entrasync".
	TablePrefix string
	// MaxRetries is how often the SDK retries a throttled or failed request
	// before the error reaches the caller: 0 means the SDK's default (3),
	// a negative value means no retries.
	MaxRetries int
	// Logger receives table creation events; nil discards them.
	Logger *slog.Logger
}

// Store is a dirsync.Store over one storage account.
type Store struct {
	svc    *aztables.ServiceClient
	prefix string
	logger *slog.Logger

	mu      sync.Mutex
	clients map[string]*aztables.Client // by real table name
}

// New validates cfg and returns a Store. It does not contact the service; use
// Ping for that.
func New(cfg Config) (*Store, error) {
	prefix := cfg.TablePrefix
	if prefix == "" {
		prefix = DefaultTablePrefix
	}
	if !isTableName(prefix, 1, 40) {
		return nil, configError("TablePrefix %q is not valid: use 1 to 40 letters and digits, starting with a letter", prefix)
	}
	opts := &aztables.ClientOptions{ClientOptions: azure.ClientOptions(cfg.MaxRetries)}
	opts.PerRetryPolicies = append(opts.PerRetryPolicies, keepBatchBody{})
	var svc *aztables.ServiceClient
	var err error
	switch {
	case cfg.ConnectionString != "" && cfg.AccountURL != "":
		return nil, configError("ConnectionString and AccountURL are both set; set only one")
	case cfg.ConnectionString != "":
		if cfg.UseManagedIdentity || cfg.ClientID != "" {
			return nil, configError("UseManagedIdentity and ClientID apply only with AccountURL, not with ConnectionString")
		}
		// Say precisely what is wrong, without quoting the string (it holds
		// the account key): the SDK rejects some of these only vaguely.
		if _, err := azure.ParseConnectionString(cfg.ConnectionString); err != nil {
			return nil, configError("ConnectionString is malformed: %v", err)
		}
		svc, err = aztables.NewServiceClientFromConnectionString(cfg.ConnectionString, opts)
		if err != nil {
			// The SDK's message does not echo the string, but keep ours plain anyway.
			return nil, configError("ConnectionString could not be parsed: it needs AccountName and AccountKey (or TableEndpoint) as key=value pairs separated by ';'")
		}
	case cfg.AccountURL != "":
		if err := azure.CheckAccountURL(cfg.AccountURL, "table"); err != nil {
			return nil, configError("%v", err)
		}
		cred, cerr := azure.Credential(cfg.UseManagedIdentity, cfg.ClientID)
		if cerr != nil {
			return nil, configError("%v", cerr)
		}
		svc, err = aztables.NewServiceClient(cfg.AccountURL, cred, opts)
		if err != nil {
			return nil, configError("AccountURL %q: %v", cfg.AccountURL, err)
		}
	default:
		return nil, configError("neither ConnectionString nor AccountURL is set; set one to say which storage account holds the tables")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{svc: svc, prefix: prefix, logger: logger, clients: map[string]*aztables.Client{}}, nil
}

func configError(format string, args ...any) error {
	return dirsync.Errorf(dirsync.EINVALID, "table storage config: "+format, args...).
		WithHint("fix the table storage settings of the app and restart it")
}

// TableName returns the real table name for a logical one: prefix +
// CamelCase(logical), where '-', '_' and ' ' start a new word. EINVALID when
// the result is not a valid Azure table name.
func (s *Store) TableName(logical string) (string, error) {
	var b strings.Builder
	b.WriteString(s.prefix)
	upper := true
	for _, r := range logical {
		switch {
		case r == '-' || r == '_' || r == ' ':
			upper = true
		case 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9':
			if upper && 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			upper = false
			b.WriteRune(r)
		default:
			return "", dirsync.Errorf(dirsync.EINVALID, "table name %q is not valid: use letters, digits, '-' or '_'", logical).
				WithHint("this is a bug in the caller; table names are fixed in code")
		}
	}
	name := b.String()
	if logical == "" || !isTableName(name, 3, 63) {
		return "", dirsync.Errorf(dirsync.EINVALID, "table name %q maps to %q, which is not a valid Azure table name (3 to 63 letters and digits, starting with a letter)", logical, name).
			WithHint("use a shorter table prefix or table name")
	}
	return name, nil
}

func isTableName(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i, r := range s {
		letter := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// client returns the SDK client for a logical table.
func (s *Store) client(logical string) (*aztables.Client, string, error) {
	name, err := s.TableName(logical)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[name]
	if !ok {
		c = s.svc.NewClient(name)
		s.clients[name] = c
	}
	return c, name, nil
}

// withTable runs fn against the table's client; when the table does not exist
// it creates it and runs fn once more.
func (s *Store) withTable(ctx context.Context, logical string, fn func(*aztables.Client) error) error {
	c, name, err := s.client(logical)
	if err != nil {
		return err
	}
	err = fn(c)
	if !isTableNotFound(err) {
		return err
	}
	if err := s.createTable(ctx, c, name); err != nil {
		return err
	}
	return fn(c)
}

func (s *Store) createTable(ctx context.Context, c *aztables.Client, name string) error {
	_, err := c.CreateTable(ctx, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode == string(aztables.TableAlreadyExists) {
		return nil // created concurrently by another caller
	}
	if err != nil {
		return translate("create table "+name, err)
	}
	s.logger.Info("created table", "table", name)
	return nil
}

func isTableNotFound(err error) bool {
	var f *batchFailure
	if errors.As(err, &f) {
		return f.Status == 404 && f.Code == string(aztables.TableNotFound)
	}
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == 404 && re.ErrorCode == string(aztables.TableNotFound)
}

// Ping lists at most one table: it proves the endpoint answers and the
// credentials are accepted, without depending on any table existing.
func (s *Store) Ping(ctx context.Context) error {
	top := int32(1)
	pager := s.svc.NewListTablesPager(&aztables.ListTablesOptions{Top: &top})
	if _, err := pager.NextPage(ctx); err != nil {
		return translate("ping table storage", err)
	}
	return nil
}

// DeleteTable removes a logical table and everything in it. It is meant for
// tests and maintenance tools; a missing table is not an error.
func (s *Store) DeleteTable(ctx context.Context, logical string) error {
	c, _, err := s.client(logical)
	if err != nil {
		return err
	}
	_, err = c.Delete(ctx, nil)
	if err != nil && !isTableNotFound(err) {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return nil
		}
		return translate("delete table "+logical, err)
	}
	return nil
}
