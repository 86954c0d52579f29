package graph

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by New when a Config field is left zero.
const (
	DefaultAuthorityHost  = "https://login.microsoftonline.com/"
	DefaultGraphBaseURL   = "https://graph.microsoft.com/v1.0"
	DefaultMaxInCallWait  = 10 * time.Second
	DefaultRequestTimeout = 60 * time.Second

	// maxPageSize is the largest page Graph serves for directory objects.
	maxPageSize = 999
)

// Config says how to reach Microsoft Graph and with which credential. Errors
// name the fields (Config.TenantID): the handler, which owns the app setting
// names (handler/config.go), words them as the settings an operator sets.
type Config struct {
	// TenantID is the directory (tenant) id. Required unless
	// UseManagedIdentity.
	TenantID string
	// ClientID is the application (client) id of the app registration.
	// Required unless UseManagedIdentity.
	ClientID string

	// Exactly one credential kind must be configured.

	// ClientSecret is the app registration's client secret. Never logged
	// nor put in an error.
	ClientSecret string
	// CertificatePath is a PEM or PFX file holding the app's certificate and
	// its private key.
	CertificatePath string
	// CertificatePassword unlocks an encrypted PFX.
	CertificatePassword string
	// UseManagedIdentity authenticates as the Azure workload's managed
	// identity.
	UseManagedIdentity bool
	// ManagedIdentityClientID selects a user-assigned identity; empty means
	// the system-assigned one.
	ManagedIdentityClientID string

	// AuthorityHost is the Entra ID login endpoint, default
	// DefaultAuthorityHost.
	AuthorityHost string
	// GraphBaseURL is the Graph endpoint with its version, default
	// DefaultGraphBaseURL. Must be https.
	GraphBaseURL string
	// TrustedCAPEM is an extra root certificate (PEM) trusted for TLS. It
	// is how the local Graph simulator's generated certificate is
	// trusted, so it is accepted only when both AuthorityHost
	// and GraphBaseURL are loopback addresses: real endpoints are verified
	// against the system roots alone.
	TrustedCAPEM []byte

	// PageSize asks Graph for at most this many users per delta page
	// (1..999); a DeltaRequest's own PageSize wins. Zero leaves it to Graph.
	PageSize int
	// MaxInCallWait is the longest the adapter sleeps inside one call on
	// Graph's advice, default DefaultMaxInCallWait. A longer Retry-After is returned to the caller as ETHROTTLED with
	// RetryAfter, so the engine can reschedule instead of holding a worker.
	MaxInCallWait time.Duration
	// RequestTimeout bounds one HTTP attempt, default DefaultRequestTimeout.
	RequestTimeout time.Duration

	// Logger receives retry and diagnostic events; nil discards them.
	Logger *slog.Logger
}

// credentialKind is the one way of authenticating a Config selects.
type credentialKind int

const (
	credSecret credentialKind = iota + 1
	credCertificate
	credManagedIdentity
)

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	cred      credentialKind
	authority *url.URL
	graphBase *url.URL
	roots     *x509.CertPool // nil: system roots
}

// validate checks cfg and fills in defaults. Every error names the setting
// to fix.
func validate(cfg Config) (*settings, error) {
	s := &settings{Config: cfg}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	kinds := 0
	if cfg.ClientSecret != "" {
		kinds++
		s.cred = credSecret
	}
	if cfg.CertificatePath != "" {
		kinds++
		s.cred = credCertificate
	}
	if cfg.UseManagedIdentity {
		kinds++
		s.cred = credManagedIdentity
	}
	switch {
	case kinds == 0:
		bad("no Graph credential is configured: set exactly one of Config.ClientSecret, Config.CertificatePath or Config.UseManagedIdentity")
	case kinds > 1:
		bad("more than one Graph credential is configured: set only one of Config.ClientSecret, Config.CertificatePath or Config.UseManagedIdentity")
	}
	if cfg.CertificatePassword != "" && cfg.CertificatePath == "" {
		bad("Config.CertificatePassword is set but Config.CertificatePath is not")
	}
	if cfg.ManagedIdentityClientID != "" && !cfg.UseManagedIdentity {
		bad("Config.ManagedIdentityClientID is set but Config.UseManagedIdentity is not true")
	}

	if !cfg.UseManagedIdentity || cfg.TenantID != "" {
		switch {
		case cfg.TenantID == "" && !cfg.UseManagedIdentity:
			bad("Config.TenantID is required: the directory (tenant) id shown on the app registration's overview page in the Entra admin center")
		case !validTenant(cfg.TenantID):
			bad("Config.TenantID %q is not a tenant id: use the directory (tenant) id, a GUID, or the tenant's domain name", cfg.TenantID)
		}
	}
	if !cfg.UseManagedIdentity {
		switch {
		case cfg.ClientID == "":
			bad("Config.ClientID is required: the application (client) id shown on the app registration's overview page")
		case !validClientID(cfg.ClientID):
			bad("Config.ClientID %q is not a client id: use the application (client) id, a GUID", cfg.ClientID)
		}
	}

	if s.AuthorityHost == "" {
		s.AuthorityHost = DefaultAuthorityHost
	}
	if u, err := httpsURL(s.AuthorityHost); err != nil {
		bad("Config.AuthorityHost %q: %v", s.AuthorityHost, err)
	} else {
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		s.authority = u
		s.AuthorityHost = u.String()
	}
	if s.GraphBaseURL == "" {
		s.GraphBaseURL = DefaultGraphBaseURL
	}
	if u, err := httpsURL(s.GraphBaseURL); err != nil {
		bad("Config.GraphBaseURL %q: %v", s.GraphBaseURL, err)
	} else {
		u.Path = strings.TrimRight(u.Path, "/")
		s.graphBase = u
		s.GraphBaseURL = u.String()
	}

	if len(cfg.TrustedCAPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		switch {
		case !pool.AppendCertsFromPEM(cfg.TrustedCAPEM):
			bad("Config.TrustedCAPEM holds no PEM certificate")
		case s.authority != nil && s.graphBase != nil && (!isLoopback(s.authority.Hostname()) || !isLoopback(s.graphBase.Hostname())):
			bad("Config.TrustedCAPEM is only accepted when Config.AuthorityHost and Config.GraphBaseURL are loopback addresses (the local Graph simulator); remove it to use Microsoft Graph")
		default:
			s.roots = pool
		}
	}

	switch {
	case s.PageSize < 0 || s.PageSize > maxPageSize:
		bad("Config.PageSize %d is out of range: use 1 to %d, or 0 to let Graph choose", s.PageSize, maxPageSize)
	}
	switch {
	case s.MaxInCallWait < 0:
		bad("Config.MaxInCallWait %s is negative", s.MaxInCallWait)
	case s.MaxInCallWait == 0:
		s.MaxInCallWait = DefaultMaxInCallWait
	}
	switch {
	case s.RequestTimeout < 0:
		bad("Config.RequestTimeout %s is negative", s.RequestTimeout)
	case s.RequestTimeout == 0:
		s.RequestTimeout = DefaultRequestTimeout
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("graph: invalid configuration: %w", err)
	}
	return s, nil
}

// httpsURL parses an endpoint that must be an absolute https URL without
// query, fragment or credentials.
func httpsURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "https":
		return nil, errors.New("must be an https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("must not contain a user name or password")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("must not have a query or fragment")
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validTenant accepts a GUID or a domain-like name: the characters Entra
// allows, and nothing that could change the authority URL's path.
func validTenant(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// validClientID is lenient (the simulator uses readable ids) but rejects
// whitespace and separators that show a pasted value went wrong.
func validClientID(s string) bool { return validTenant(s) }
