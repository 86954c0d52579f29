package graphsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultTenantID      = "sim-tenant"
	DefaultClientID      = "sim-client"
	DefaultClientSecret  = "sim-secret"
	DefaultDomain        = "contoso.onmicrosoft.com"
	DefaultPageSize      = 100
	MaxPageSize          = 999
	DefaultTokenLifetime = 7 * 24 * time.Hour
	DefaultMembersPage   = 20
	accessTokenLifetime  = 3599 * time.Second
)

// Config configures a simulator. The zero value is a valid, empty tenant.
type Config struct {
	// Users is the generated tenant size (0 = no generated users).
	Users int
	// Groups is the number of generated groups. 0 picks a sensible set when
	// Users > 0 (a nesting "All Employees" group, one group per department,
	// managers, guests, a project and an office group); a negative value
	// generates none.
	Groups int
	// Seed drives the generator: the same seed gives an identical tenant.
	Seed int64
	// Domain is the tenant's verified domain used in UPNs and mail addresses
	// (default "contoso.onmicrosoft.com").
	Domain string
	// PageSize is the number of objects per page when the client does not ask
	// with `Prefer: odata.maxpagesize=N` (default 100, at most 999).
	PageSize int
	// GroupMembersPerPage is how many entries of members@delta a groups delta
	// page carries for one group before the group is continued on the next
	// page, repeated (default 20).
	GroupMembersPerPage int
	// TokenLifetime is how long a delta or skip token stays valid (default
	// 7 days, as Graph has for directory objects since July 2020).
	TokenLifetime time.Duration
	// ExpiryForm is how an expired token is answered: "expired-400" (default:
	// 400 syncStateNotFound), "expired-resync" (400 resyncRequired) or
	// "expired-410" (410 Gone with a Location header).
	ExpiryForm string
	// TenantID, ClientID and ClientSecret are the only credentials the token
	// endpoint accepts (defaults "sim-tenant", "sim-client", "sim-secret").
	TenantID, ClientID, ClientSecret string
	// Now is the clock for delta token ages and the throttling window
	// (default time.Now). Access tokens and the TLS certificate use the real
	// clock, so aging delta tokens never breaks authentication.
	Now func() time.Time
	// PageLatency is added to every paged answer (delta, lists, members).
	PageLatency time.Duration
	// RequestsPer10s is a per-application budget of Graph requests in any
	// 10-second window; over budget the answer is 429 with Retry-After.
	// 0 turns throttling off.
	RequestsPer10s int
	// NullForClearedProperties makes later delta rounds send a selected
	// property that was removed since the token as null, as Graph does. When
	// false (the default) such a property is simply omitted. A property that
	// was never set is omitted either way.
	NullForClearedProperties bool
	// Quirks switches on Graph's legal-but-awkward paging behaviour.
	Quirks Quirks
	// Logger receives one debug line per request (method, route, status);
	// nil discards. Tokens, secrets and query strings are never logged.
	Logger *slog.Logger
}

// Quirks are Graph behaviours a robust client must survive. Zero disables
// each one.
type Quirks struct {
	// EmptyPageEvery serves, after every N-th page of a round, an extra page
	// with no objects that still carries a nextLink.
	EmptyPageEvery int `json:"emptyPageEvery"`
	// RepeatEvery makes every N-th page of a round start with the last object
	// of the previous page again, so one object appears twice in a round.
	RepeatEvery int `json:"repeatEvery"`
}

func (c *Config) setDefaults() error {
	if c.Users < 0 {
		return fmt.Errorf("graphsim: Config.Users is %d: it must be 0 or more", c.Users)
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		return fmt.Errorf("graphsim: Config.PageSize is %d: it must be between 1 and %d (0 picks %d)", c.PageSize, MaxPageSize, DefaultPageSize)
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.GroupMembersPerPage < 0 {
		return fmt.Errorf("graphsim: Config.GroupMembersPerPage is %d: it must be 1 or more (0 picks %d)", c.GroupMembersPerPage, DefaultMembersPage)
	}
	if c.GroupMembersPerPage == 0 {
		c.GroupMembersPerPage = DefaultMembersPage
	}
	if c.TokenLifetime < 0 {
		return fmt.Errorf("graphsim: Config.TokenLifetime is %s: it must be positive (0 picks %s)", c.TokenLifetime, DefaultTokenLifetime)
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	switch c.ExpiryForm {
	case "":
		c.ExpiryForm = KindExpired400
	case KindExpired400, KindExpiredResync, KindExpired410:
	default:
		return fmt.Errorf("graphsim: Config.ExpiryForm is %q: use %q, %q or %q", c.ExpiryForm, KindExpired400, KindExpiredResync, KindExpired410)
	}
	if c.RequestsPer10s < 0 {
		return fmt.Errorf("graphsim: Config.RequestsPer10s is %d: it must be 0 (off) or more", c.RequestsPer10s)
	}
	if c.PageLatency < 0 {
		return fmt.Errorf("graphsim: Config.PageLatency is %s: it must not be negative", c.PageLatency)
	}
	if c.Quirks.EmptyPageEvery < 0 || c.Quirks.RepeatEvery < 0 {
		return errors.New("graphsim: Config.Quirks values must not be negative")
	}
	if c.TenantID == "" {
		c.TenantID = DefaultTenantID
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.ClientSecret == "" {
		c.ClientSecret = DefaultClientSecret
	}
	if strings.ContainsAny(c.TenantID, "/?#% ") {
		return fmt.Errorf("graphsim: Config.TenantID %q must not contain '/', '?', '#', '%%' or spaces", c.TenantID)
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if strings.ContainsAny(c.Domain, "/@ ") {
		return fmt.Errorf("graphsim: Config.Domain %q is not a domain name", c.Domain)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server is a running (or ready to run) simulator.
type Server struct {
	cfg    Config
	tenant *Tenant
	auth   *authority
	tokens *tokenCodec
	log    *slog.Logger

	mu       sync.Mutex
	srv      *http.Server
	ln       net.Listener
	url      string
	certPEM  []byte
	serveErr chan error
}

// New builds a simulator with a generated tenant. It does not listen yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	t, err := newTenant(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		tenant: t,
		auth:   newAuthority(),
		tokens: newTokenCodec(),
		log:    cfg.Logger,
	}
	return s, nil
}

// Start listens on addr (for example "127.0.0.1:0") with TLS, using a
// certificate generated now for 127.0.0.1, ::1 and localhost, and serves in
// the background until Close.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("graphsim: Start called twice")
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	certPEM, cert, err := newCertificate()
	if err != nil {
		return fmt.Errorf("graphsim: generate certificate: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("graphsim: listen on %s: %w", addr, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	s.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	s.certPEM = certPEM
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// The handler logs what matters; the server's own log would print
		// TLS handshake noise from clients that do not trust us yet.
		ErrorLog: slogErrorLog(s.log),
	}
	s.serveErr = make(chan error, 1)
	go func() {
		err := s.srv.ServeTLS(ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
	s.log.Info("graph simulator listening", "url", s.url, "users", len(s.tenant.order))
	return nil
}

// URL is "https://127.0.0.1:PORT" once started.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// GraphBaseURL is URL()+"/v1.0", the base URL for a Graph client.
func (s *Server) GraphBaseURL() string { return s.URL() + "/v1.0" }

// AuthorityHost is URL()+"/", the authority host for azidentity.
func (s *Server) AuthorityHost() string { return s.URL() + "/" }

// CertificatePEM is the PEM-encoded certificate the server presents; a
// client trusts the simulator by adding it to its RootCAs.
func (s *Server) CertificatePEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.certPEM...)
}

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	return <-s.serveErr
}

// Tenant is the simulated directory, to read and mutate.
func (s *Server) Tenant() *Tenant { return s.tenant }

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }
