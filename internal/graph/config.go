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

// Config says how to reach Microsoft Graph and with which credential. The
// comment on each field names the setting it is read from, and errors from
// New use the same names.
type Config struct {
	// TenantID is the directory (tenant) id (GRAPH_TENANT_ID). Required unless
	// UseManagedIdentity.
	TenantID string
	// ClientID is the application (client) id of the app registration
	// (GRAPH_CLIENT_ID). Required unless UseManagedIdentity.
	ClientID string

	// Exactly one credential kind must be configured.

	// ClientSecret is the app registration's client secret
	// (GRAPH_CLIENT_SECRET). Never logged nor put in an error.
	ClientSecret string
	// CertificatePath is a PEM or PFX file holding the app's certificate and
	// its private key (GRAPH_CERTIFICATE_PATH).
	CertificatePath string
	// CertificatePassword unlocks an encrypted PFX (GRAPH_CERTIFICATE_PASSWORD).
	CertificatePassword string
	// UseManagedIdentity authenticates as the Azure workload's managed
	// identity (GRAPH_USE_MANAGED_IDENTITY).
	UseManagedIdentity bool
	// ManagedIdentityClientID selects a user-assigned identity
	// (GRAPH_MANAGED_IDENTITY_CLIENT_ID); empty means the system-assigned one.
	ManagedIdentityClientID string

	// AuthorityHost is the Entra ID login endpoint (GRAPH_AUTHORITY_HOST),
	// default DefaultAuthorityHost.
	AuthorityHost string
	// GraphBaseURL is the Graph endpoint with its version (GRAPH_BASE_URL),
	// default DefaultGraphBaseURL. Must be https.
	GraphBaseURL string
	// TrustedCAPEM is an extra root certificate (PEM) trusted for TLS
	// (GRAPH_TRUSTED_CA). It is how the local Graph simulator's generated
	// certificate is trusted, so it is accepted only when both AuthorityHost
	// and GraphBaseURL are loopback addresses: real endpoints are verified
	// against the system roots alone.
	TrustedCAPEM []byte

	// PageSize asks Graph for at most this many users per delta page
	// (GRAPH_PAGE_SIZE, 1..999); a DeltaRequest's own PageSize wins. Zero
	// leaves it to Graph.
	PageSize int
	// MaxInCallWait is the longest the adapter sleeps inside one call on
	// Graph's advice (GRAPH_MAX_INCALL_WAIT), default DefaultMaxInCallWait.
	// A longer Retry-After is returned to the caller as ETHROTTLED with
	// RetryAfter, so the engine can reschedule instead of holding a worker.
	MaxInCallWait time.Duration
	// RequestTimeout bounds one HTTP attempt (GRAPH_REQUEST_TIMEOUT), default
	// DefaultRequestTimeout.
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
		bad("no Graph credential is configured: set exactly one of GRAPH_CLIENT_SECRET, GRAPH_CERTIFICATE_PATH or GRAPH_USE_MANAGED_IDENTITY")
	case kinds > 1:
		bad("more than one Graph credential is configured: set only one of GRAPH_CLIENT_SECRET, GRAPH_CERTIFICATE_PATH or GRAPH_USE_MANAGED_IDENTITY")
	}
	if cfg.CertificatePassword != "" && cfg.CertificatePath == "" {
		bad("GRAPH_CERTIFICATE_PASSWORD is set but GRAPH_CERTIFICATE_PATH is not")
	}
	if cfg.ManagedIdentityClientID != "" && !cfg.UseManagedIdentity {
		bad("GRAPH_MANAGED_IDENTITY_CLIENT_ID is set but GRAPH_USE_MANAGED_IDENTITY is not true")
	}

	if !cfg.UseManagedIdentity || cfg.TenantID != "" {
		switch {
		case cfg.TenantID == "" && !cfg.UseManagedIdentity:
			bad("GRAPH_TENANT_ID is required: the directory (tenant) id shown on the app registration's overview page in the Entra admin center")
		case !validTenant(cfg.TenantID):
			bad("GRAPH_TENANT_ID %q is not a tenant id: use the directory (tenant) id, a GUID, or the tenant's domain name", cfg.TenantID)
		}
	}
	if !cfg.UseManagedIdentity {
		switch {
		case cfg.ClientID == "":
			bad("GRAPH_CLIENT_ID is required: the application (client) id shown on the app registration's overview page")
		case !validClientID(cfg.ClientID):
			bad("GRAPH_CLIENT_ID %q is not a client id: use the application (client) id, a GUID", cfg.ClientID)
		}
	}

	if s.AuthorityHost == "" {
		s.AuthorityHost = DefaultAuthorityHost
	}
	if u, err := httpsURL(s.AuthorityHost); err != nil {
		bad("GRAPH_AUTHORITY_HOST %q: %v", s.AuthorityHost, err)
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
		bad("GRAPH_BASE_URL %q: %v", s.GraphBaseURL, err)
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
			bad("GRAPH_TRUSTED_CA holds no PEM certificate")
		case s.authority != nil && s.graphBase != nil && (!isLoopback(s.authority.Hostname()) || !isLoopback(s.graphBase.Hostname())):
			bad("GRAPH_TRUSTED_CA is only accepted when GRAPH_AUTHORITY_HOST and GRAPH_BASE_URL are loopback addresses (the local Graph simulator); remove it to use Microsoft Graph")
		default:
			s.roots = pool
		}
	}

	switch {
	case s.PageSize < 0 || s.PageSize > maxPageSize:
		bad("GRAPH_PAGE_SIZE %d is out of range: use 1 to %d, or 0 to let Graph choose", s.PageSize, maxPageSize)
	}
	switch {
	case s.MaxInCallWait < 0:
		bad("GRAPH_MAX_INCALL_WAIT %s is negative", s.MaxInCallWait)
	case s.MaxInCallWait == 0:
		s.MaxInCallWait = DefaultMaxInCallWait
	}
	switch {
	case s.RequestTimeout < 0:
		bad("GRAPH_REQUEST_TIMEOUT %s is negative", s.RequestTimeout)
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
