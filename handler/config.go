package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Config is every app setting the handler reads. Azure passes App Settings to
// the handler as environment variables; locally the devhost passes the
// Values of local.settings.json. See README.md "Configuration".
type Config struct {
	// Storage for state (Table) and run logs (Blob): a connection string
	// (STORAGE_CONNECTION_STRING, falling back to AzureWebJobsStorage), or an
	// account name with managed identity (STORAGE_ACCOUNT_NAME, optional
	// STORAGE_MANAGED_IDENTITY_CLIENT_ID).
	StorageConnectionString string
	StorageAccountName      string
	StorageIdentityClientID string
	TablePrefix             string // TABLE_PREFIX, default "entrasync"
	LogContainer            string // LOG_CONTAINER, default "sync-logs"
	PhotoContainer          string // PHOTO_CONTAINER, default "photos": users' photos (photo sync)

	// Queue: ServiceBusConnection (connection string) or
	// ServiceBusConnection__fullyQualifiedNamespace (managed identity), as the
	// Functions host names them; ENTRASYNC_DEVHOST_URL (set by the local
	// host) sends to its in-process queue instead.
	ServiceBusConnection string
	ServiceBusNamespace  string
	// ServiceBusUseManagedIdentity (ServiceBusConnection__credential =
	// managedidentity) and ServiceBusIdentityClientID
	// (ServiceBusConnection__clientId, a user-assigned identity) are the
	// host's settings for the same connection; the handler's sender uses
	// the identity they name too.
	ServiceBusUseManagedIdentity bool
	ServiceBusIdentityClientID   string
	DevhostURL                   string
	// MaxDeliveries is the sync-work queue's max delivery count
	// (SYNC_MAX_DELIVERIES, default 10, as Service Bus).
	MaxDeliveries int

	// Graph (GRAPH_*): see internal/graph.Config.
	GraphTenantID            string
	GraphClientID            string
	GraphClientSecret        string
	GraphCertificatePath     string
	GraphCertificatePassword string
	GraphUseManagedIdentity  bool
	GraphIdentityClientID    string
	GraphAuthorityHost       string
	GraphBaseURL             string
	GraphTrustedCAFile       string
	// GraphPageSize (GRAPH_PAGE_SIZE, 1..999, default: Graph's choice)
	// asks for at most this many users per delta page.
	GraphPageSize int
	// GraphMaxInCallWait (GRAPH_MAX_INCALL_WAIT, a Go duration like 10s)
	// and GraphRequestTimeout (GRAPH_REQUEST_TIMEOUT, like 60s): see
	// internal/graph.Config; zero means the adapter's default.
	GraphMaxInCallWait  time.Duration
	GraphRequestTimeout time.Duration

	// API roles for function keys: comma-separated lower-case hex SHA-256 of
	// the keys (ADMIN_KEY_SHA256, SUPPORT_KEY_SHA256). Only hashes are
	// configured, never keys.
	AdminKeyHashes   []string
	SupportKeyHashes []string
	// TrustEasyAuth is true when App Service Authentication is on
	// (WEBSITE_AUTH_ENABLED), the only case in which the
	// x-ms-client-principal header can be trusted.
	TrustEasyAuth bool

	LogLevel slog.Level // LOG_LEVEL: debug, info (default), warn, error
	// CPUProfile, when set (ENTRASYNC_CPU_PROFILE), is a file the handler
	// writes a Go CPU profile of its whole life to, for `go tool pprof`
	// (make bench -cpuprofile). A diagnostic: leave it unset in Azure.
	CPUProfile string
}

// settingError names the setting and says what to do.
func settingError(name, format string, args ...any) error {
	return fmt.Errorf("app setting %s: %s", name, fmt.Sprintf(format, args...))
}

// LoadConfig reads and validates the configuration. Every error names the
// setting at fault; all errors are reported at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	var errs []error
	c := Config{
		StorageConnectionString:    get("STORAGE_CONNECTION_STRING"),
		StorageAccountName:         get("STORAGE_ACCOUNT_NAME"),
		StorageIdentityClientID:    get("STORAGE_MANAGED_IDENTITY_CLIENT_ID"),
		TablePrefix:                orDefault(get("TABLE_PREFIX"), "entrasync"),
		LogContainer:               orDefault(get("LOG_CONTAINER"), "sync-logs"),
		PhotoContainer:             orDefault(get("PHOTO_CONTAINER"), "photos"),
		CPUProfile:                 get("ENTRASYNC_CPU_PROFILE"),
		ServiceBusConnection:       get("ServiceBusConnection"),
		ServiceBusNamespace:        get("ServiceBusConnection__fullyQualifiedNamespace"),
		ServiceBusIdentityClientID: get("ServiceBusConnection__clientId"),
		DevhostURL:                 get("ENTRASYNC_DEVHOST_URL"),
		GraphTenantID:              get("GRAPH_TENANT_ID"),
		GraphClientID:              get("GRAPH_CLIENT_ID"),
		GraphClientSecret:          get("GRAPH_CLIENT_SECRET"),
		GraphCertificatePath:       get("GRAPH_CERTIFICATE_PATH"),
		GraphCertificatePassword:   get("GRAPH_CERTIFICATE_PASSWORD"),
		GraphIdentityClientID:      get("GRAPH_MANAGED_IDENTITY_CLIENT_ID"),
		GraphAuthorityHost:         get("GRAPH_AUTHORITY_HOST"),
		GraphBaseURL:               get("GRAPH_BASE_URL"),
		GraphTrustedCAFile:         get("GRAPH_TRUSTED_CA_FILE"),
	}
	if c.StorageConnectionString == "" && c.StorageAccountName == "" {
		c.StorageConnectionString = get("AzureWebJobsStorage")
	}
	if !validContainerName(c.PhotoContainer) {
		errs = append(errs, settingError("PHOTO_CONTAINER", "%q is not a valid blob container name: use 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit (default photos)", c.PhotoContainer))
	} else if c.PhotoContainer == c.LogContainer {
		errs = append(errs, settingError("PHOTO_CONTAINER", "%q is also LOG_CONTAINER: give the photos their own container (default photos), so support staff browsing the run logs do not see them", c.PhotoContainer))
	}
	if c.StorageConnectionString == "" && c.StorageAccountName == "" {
		errs = append(errs, settingError("STORAGE_CONNECTION_STRING", "missing: set it (or AzureWebJobsStorage) to a storage connection string, or set STORAGE_ACCOUNT_NAME to use the app's managed identity"))
	}
	if c.StorageConnectionString != "" && c.StorageAccountName != "" {
		errs = append(errs, settingError("STORAGE_ACCOUNT_NAME", "set either it or STORAGE_CONNECTION_STRING, not both"))
	}
	if c.DevhostURL == "" && c.ServiceBusConnection == "" && c.ServiceBusNamespace == "" {
		errs = append(errs, settingError("ServiceBusConnection", "missing: set it to the Service Bus connection string, or set ServiceBusConnection__fullyQualifiedNamespace (e.g. mybus.servicebus.windows.net) to use the managed identity"))
	}
	switch v := get("ServiceBusConnection__credential"); {
	case v == "":
	case strings.EqualFold(v, "managedidentity"):
		c.ServiceBusUseManagedIdentity = true
	default:
		errs = append(errs, settingError("ServiceBusConnection__credential", "%q: the only value is managedidentity", v))
	}
	if (c.ServiceBusUseManagedIdentity || c.ServiceBusIdentityClientID != "") && c.ServiceBusNamespace == "" {
		errs = append(errs, settingError("ServiceBusConnection__fullyQualifiedNamespace", "missing: ServiceBusConnection__credential and __clientId apply to the namespace reached with the managed identity"))
	}
	c.MaxDeliveries = 10
	if v := get("SYNC_MAX_DELIVERIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 2000 {
			errs = append(errs, settingError("SYNC_MAX_DELIVERIES", "%q is not a number from 1 to 2000; it must match the queue's max delivery count", v))
		}
		c.MaxDeliveries = n
	}
	if v := get("GRAPH_USE_MANAGED_IDENTITY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, settingError("GRAPH_USE_MANAGED_IDENTITY", "%q is not true or false", v))
		}
		c.GraphUseManagedIdentity = b
	}
	if v := get("GRAPH_PAGE_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			errs = append(errs, settingError("GRAPH_PAGE_SIZE", "%q is not a number from 1 to 999 (users per delta page)", v))
		}
		c.GraphPageSize = n
	}
	for _, d := range []struct {
		name string
		into *time.Duration
	}{{"GRAPH_MAX_INCALL_WAIT", &c.GraphMaxInCallWait}, {"GRAPH_REQUEST_TIMEOUT", &c.GraphRequestTimeout}} {
		if v := get(d.name); v != "" {
			n, err := time.ParseDuration(v)
			if err != nil || n <= 0 {
				errs = append(errs, settingError(d.name, "%q is not a positive duration like 30s or 2m", v))
			}
			*d.into = n
		}
	}
	var err error
	if c.AdminKeyHashes, err = keyHashes("ADMIN_KEY_SHA256", get("ADMIN_KEY_SHA256")); err != nil {
		errs = append(errs, err)
	}
	if c.SupportKeyHashes, err = keyHashes("SUPPORT_KEY_SHA256", get("SUPPORT_KEY_SHA256")); err != nil {
		errs = append(errs, err)
	}
	c.TrustEasyAuth, _ = strconv.ParseBool(get("WEBSITE_AUTH_ENABLED"))
	switch strings.ToLower(get("LOG_LEVEL")) {
	case "", "info":
		c.LogLevel = slog.LevelInfo
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		errs = append(errs, settingError("LOG_LEVEL", "%q is not one of debug, info, warn, error", get("LOG_LEVEL")))
	}
	if c.GraphTrustedCAFile != "" {
		if _, err := os.Stat(c.GraphTrustedCAFile); err != nil {
			errs = append(errs, settingError("GRAPH_TRUSTED_CA_FILE", "cannot read %s: %v", c.GraphTrustedCAFile, errors.Unwrap(err)))
		}
	}
	return c, errors.Join(errs...)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func keyHashes(name, v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var out []string
	for _, h := range strings.Split(v, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return nil, settingError(name, "each entry must be the SHA-256 of a function key as 64 hex digits (e.g. printf %%s \"$KEY\" | sha256sum)")
		}
		out = append(out, h)
	}
	return out, nil
}

// The adapters name their Config fields in configuration errors
// ("Config.TenantID"), since this file alone owns the app setting names;
// these tables say which setting each field is read from, so an error
// reaches the operator naming what to fix.
var (
	graphSettings = settingNames{
		"Config.TenantID":                "GRAPH_TENANT_ID",
		"Config.ClientID":                "GRAPH_CLIENT_ID",
		"Config.ClientSecret":            "GRAPH_CLIENT_SECRET",
		"Config.CertificatePath":         "GRAPH_CERTIFICATE_PATH",
		"Config.CertificatePassword":     "GRAPH_CERTIFICATE_PASSWORD",
		"Config.UseManagedIdentity":      "GRAPH_USE_MANAGED_IDENTITY",
		"Config.ManagedIdentityClientID": "GRAPH_MANAGED_IDENTITY_CLIENT_ID",
		"Config.AuthorityHost":           "GRAPH_AUTHORITY_HOST",
		"Config.GraphBaseURL":            "GRAPH_BASE_URL",
		"Config.TrustedCAPEM":            "GRAPH_TRUSTED_CA_FILE", // the file's content
		"Config.PageSize":                "GRAPH_PAGE_SIZE",
		"Config.MaxInCallWait":           "GRAPH_MAX_INCALL_WAIT",
		"Config.RequestTimeout":          "GRAPH_REQUEST_TIMEOUT",
	}
	serviceBusSettings = settingNames{
		"Config.ConnectionString":   "ServiceBusConnection",
		"Config.Namespace":          "ServiceBusConnection__fullyQualifiedNamespace",
		"Config.UseManagedIdentity": "ServiceBusConnection__credential",
		"Config.ClientID":           "ServiceBusConnection__clientId",
		"Config.DevhostURL":         "ENTRASYNC_DEVHOST_URL",
	}
)

// settingNames maps an adapter's Config field names to app settings.
type settingNames map[string]string

// name rewrites err's text with the setting names. A *dirsync.Error keeps
// its code (a copy with Message and Hint rewritten); any other error keeps
// its chain.
func (n settingNames) name(err error) error {
	if err == nil {
		return nil
	}
	pairs := make([]string, 0, 2*len(n))
	for field, setting := range n {
		pairs = append(pairs, field, setting)
	}
	r := strings.NewReplacer(pairs...) // no field name is a prefix of another's
	if de, ok := err.(*dirsync.Error); ok {
		c := *de
		c.Message, c.Hint = r.Replace(c.Message), r.Replace(c.Hint)
		return &c
	}
	if s := r.Replace(err.Error()); s != err.Error() {
		return &namedError{msg: s, err: err}
	}
	return err
}

type namedError struct {
	msg string
	err error
}

func (e *namedError) Error() string { return e.msg }
func (e *namedError) Unwrap() error { return e.err }

// validContainerName reports whether s is a blob container name: 3 to 63
// lowercase letters, digits and single hyphens, starting and ending with a
// letter or digit.
func validContainerName(s string) bool {
	if len(s) < 3 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
