// Package graph reads users and groups from Microsoft Graph: it implements
// dirsync.Source with msgraph-sdk-go and azidentity.
//
// It is the only package that imports the Graph SDK, kiota and (for Graph)
// azidentity; none of their types appear in its API. SDK and HTTP failures are
// translated at this boundary into *dirsync.Error values (errors.go), and
// transient ones are retried a bounded number of times within one call
// (transport.go).
//
// Requests are built with the SDK's request builders and sent through its
// request adapter (authentication, middleware, error mapping), but page bodies
// are decoded here from the raw JSON: that keeps every property Graph returned
// exactly as sent, tells an absent property from a null one, and turns a
// malformed page into EINVALID rather than a half-filled model.
package graph

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	coreauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/entrasync/entrasync/internal/dirsync"
)

var _ dirsync.Source = (*Source)(nil)

// Source is a read-only client of Microsoft Graph. It is safe for concurrent
// use.
type Source struct {
	cfg     *settings
	log     *slog.Logger
	base    *http.Transport
	client  *msgraphsdk.GraphServiceClient
	adapter abs.RequestAdapter

	// attempts counts HTTP attempts sent to Graph (not to the token
	// endpoint), retries included.
	attempts atomic.Int64
}

// errorMapping makes the SDK decode every 4xx/5xx JSON body as an OData error.
var errorMapping = abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}

// New validates cfg and builds the Graph client. It sends no request: a wrong
// credential shows up as EUNAUTHORIZED on the first call.
func New(cfg Config) (*Source, error) {
	st, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: st.roots}
	s := &Source{cfg: st, log: st.Logger, base: base}

	cred, err := newCredential(st, base)
	if err != nil {
		return nil, err
	}

	// The SDK sends the token only to hosts it is told are Graph: list ours
	// (without port), or requests go out unauthenticated.
	auth, err := coreauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(
		cred, []string{scopeFor(st.graphBase)}, []string{st.graphBase.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph: build authentication provider: %w", err)
	}

	rt := &retryTransport{
		next:      base,
		timeout:   st.RequestTimeout,
		maxWait:   st.MaxInCallWait,
		log:       s.log,
		onAttempt: func() { s.attempts.Add(1) },
	}
	opts := msgraphsdk.GetDefaultClientOptions()
	middleware := withRetryOptions(core.GetDefaultMiddlewaresWithOptions(&opts), kiotaRetryOptions(st.MaxInCallWait, s.log))
	httpClient := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(rt, middleware...),
		// kiota's RedirectHandler follows redirects; net/http must not.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, httpClient)
	if err != nil {
		return nil, fmt.Errorf("graph: build request adapter: %w", err)
	}
	adapter.SetBaseUrl(st.GraphBaseURL) // before the client copies it
	s.adapter = adapter
	s.client = msgraphsdk.NewGraphServiceClient(adapter)
	return s, nil
}

// closeIdle drops pooled connections (tests stop their simulator after it).
func (s *Source) closeIdle() { s.base.CloseIdleConnections() }

// withRetryOptions replaces the SDK's default RetryHandler with one using
// opts, keeping the rest of the default middleware as the SDK made it.
func withRetryOptions(mws []khttp.Middleware, opts *khttp.RetryHandlerOptions) []khttp.Middleware {
	out := make([]khttp.Middleware, 0, len(mws)+1)
	replaced := false
	for _, m := range mws {
		switch m.(type) {
		case *khttp.RetryHandler, khttp.RetryHandler:
			out = append(out, khttp.NewRetryHandlerWithOptions(*opts))
			replaced = true
		default:
			out = append(out, m)
		}
	}
	if !replaced {
		out = append(out, khttp.NewRetryHandlerWithOptions(*opts))
	}
	return out
}

func newCredential(st *settings, tr *http.Transport) (azcore.TokenCredential, error) {
	copts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: st.AuthorityHost},
		Transport: &http.Client{Transport: tr},
		// azcore's own retry policy covers the token endpoint. It refuses to
		// sleep on a Retry-After above MaxRetryDelay, like the Graph side.
		Retry: policy.RetryOptions{
			MaxRetries:    2,
			RetryDelay:    500 * time.Millisecond,
			MaxRetryDelay: st.MaxInCallWait,
			TryTimeout:    st.RequestTimeout,
		},
	}
	// Instance discovery asks a fixed Microsoft host to vouch for the
	// authority. A loopback authority (the simulator) cannot be vouched for,
	// and offline the request would fail; real authorities keep the check.
	noDiscovery := isLoopback(st.authority.Hostname())
	switch st.cred {
	case credSecret:
		c, err := azidentity.NewClientSecretCredential(st.TenantID, st.ClientID, st.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: noDiscovery})
		if err != nil {
			return nil, fmt.Errorf("graph: client secret credential (Config.TenantID, Config.ClientID, Config.ClientSecret): %s", scrub(err.Error(), st.ClientSecret))
		}
		return c, nil
	case credCertificate:
		data, err := os.ReadFile(st.CertificatePath)
		if err != nil {
			return nil, fmt.Errorf("graph: Config.CertificatePath: cannot read %s: %w", st.CertificatePath, err)
		}
		certs, key, err := azidentity.ParseCertificates(data, []byte(st.CertificatePassword))
		if err != nil {
			return nil, fmt.Errorf("graph: Config.CertificatePath: %s does not hold a certificate and its private key (PEM, or PFX with Config.CertificatePassword if encrypted): %s",
				st.CertificatePath, scrub(err.Error(), st.CertificatePassword))
		}
		c, err := azidentity.NewClientCertificateCredential(st.TenantID, st.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: noDiscovery})
		if err != nil {
			return nil, fmt.Errorf("graph: certificate credential (Config.TenantID, Config.ClientID, Config.CertificatePath): %w", err)
		}
		return c, nil
	default:
		mopts := &azidentity.ManagedIdentityCredentialOptions{}
		mopts.Retry = copts.Retry // the hosting environment's endpoint, default transport
		if st.ManagedIdentityClientID != "" {
			mopts.ID = azidentity.ClientID(st.ManagedIdentityClientID)
		}
		c, err := azidentity.NewManagedIdentityCredential(mopts)
		if err != nil {
			return nil, fmt.Errorf("graph: managed identity credential (Config.UseManagedIdentity, Config.ManagedIdentityClientID): %w", err)
		}
		return c, nil
	}
}

// scopeFor is the .default scope of the Graph resource. The simulator, on
// loopback, stands in for the public-cloud Graph and expects its scope.
func scopeFor(base *url.URL) string {
	if isLoopback(base.Hostname()) {
		return "https://graph.microsoft.com/.default"
	}
	return "https://" + base.Hostname() + "/.default"
}

// scrub removes a secret from a message, in case a library echoes it.
func scrub(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "[redacted]")
}

// send sends one request built by the SDK and returns the raw body (nil for
// an empty one). Every failure comes back translated (mapError).
func (s *Source) send(ctx context.Context, o op, ri *abs.RequestInformation, buildErr error) ([]byte, error) {
	if buildErr != nil {
		return nil, fmt.Errorf("graph: %s: build request: %w", o.name, buildErr)
	}
	cctx, ex := withExchange(ctx)
	res, err := s.adapter.SendPrimitive(cctx, ri, "[]byte", errorMapping)
	if err != nil {
		return nil, mapError(ctx, o, err, ex)
	}
	body, _ := res.([]byte)
	return body, nil
}

// guard turns a panic inside the SDK (its error types dereference optional
// fields) into an error, so bad input from the wire never crashes a worker.
func (s *Source) guard(o op, err *error) {
	if r := recover(); r != nil {
		s.log.Error("graph: panic while handling a Graph call", "op", o.name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = &dirsync.Error{
			Code:    dirsync.EINTERNAL,
			Message: "an unexpected failure occurred while reading from Microsoft Graph (" + o.name + ")",
			Err:     fmt.Errorf("graph: %s: panic: %v", o.name, r),
		}
	}
}

// checkLink makes sure a stored link points at the configured Graph endpoint
// and at the expected resource before the SDK follows it (it would send the
// token only to Graph hosts anyway, but a link from another endpoint or a
// different resource is useless). want is a lowercase path fragment such as
// "/users/".
func (s *Source) checkLink(link, want string) error {
	u, err := url.Parse(link)
	base := s.cfg.graphBase
	switch {
	case err != nil || !u.IsAbs():
		return fmt.Errorf("the stored link is not a URL")
	case !strings.EqualFold(u.Scheme, "https") || !strings.EqualFold(u.Host, base.Host):
		return fmt.Errorf("the stored link points to %s, not to the configured Graph endpoint %s (the Graph base URL setting)", u.Scheme+"://"+u.Host, base.Scheme+"://"+base.Host)
	case !strings.HasPrefix(strings.ToLower(u.Path), strings.ToLower(base.Path)+"/"):
		return fmt.Errorf("the stored link is for %s, not for the configured Graph version %s (the Graph base URL setting)", u.Path, base.Path)
	case !strings.Contains(strings.ToLower(u.Path), want):
		return fmt.Errorf("the stored link is for %s, not for %s", u.Path, strings.Trim(want, "/"))
	}
	return nil
}

// staleLink is the error for a stored delta/next link that cannot be used.
// It is ETOKENEXPIRED so the engine starts a full round instead of failing
// forever on the same link.
func staleLink(reason error) *dirsync.Error {
	return &dirsync.Error{
		Code:    dirsync.ETOKENEXPIRED,
		Message: reason.Error() + "; a full sync will start",
		Hint:    "Nothing to do: the next round enumerates every object again and reconciles.",
		Err:     reason,
	}
}

// pageSize picks the page size for a request: the request's own, else the
// configured one.
func (s *Source) pageSize(req int) int {
	if req > 0 {
		return min(req, maxPageSize)
	}
	return s.cfg.PageSize
}
