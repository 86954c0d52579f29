package graphsim

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// authority is the token endpoint's memory: the access tokens it issued.
type authority struct {
	mu     sync.Mutex
	tokens map[string]accessToken
}

type accessToken struct {
	app     string
	expires time.Time
}

func newAuthority() *authority { return &authority{tokens: make(map[string]accessToken)} }

// issue makes an opaque bearer token for app. Access tokens age by the real
// clock so that tests aging delta tokens with Config.Now keep their session.
func (a *authority) issue(app string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := "sim." + base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.tokens {
		if now.After(v.expires) {
			delete(a.tokens, k)
		}
	}
	a.tokens[tok] = accessToken{app: app, expires: now.Add(accessTokenLifetime)}
	return tok
}

// check validates an Authorization header. It returns the application the
// token was issued to, or the reason it is refused (Graph's own wording).
func (a *authority) check(header string) (app, refusal string) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(header), " ")
	tok = strings.TrimSpace(tok)
	if header == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", "Access token is empty."
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tokens[tok]
	if !ok {
		return "", "Access token validation failure. Invalid audience or token not issued by this authority."
	}
	if time.Now().After(t.expires) {
		return "", "Lifetime validation failed, the token is expired."
	}
	return t.app, ""
}

// oauthError writes an Entra ID (AADSTS) error answer.
func (s *Server) oauthError(w http.ResponseWriter, r *http.Request, status int, errCode string, aadsts int, msg string) {
	now := time.Now().UTC()
	trace, corr := newRequestID(), r.Header.Get("client-request-id")
	if corr == "" {
		corr = newRequestID()
	}
	desc := fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
		aadsts, msg, trace, corr, now.Format("2006-01-02 15:04:05Z"))
	body := ordered{
		{"error", errCode},
		{"error_description", desc},
		{"error_codes", []int{aadsts}},
		{"timestamp", now.Format("2006-01-02 15:04:05Z")},
		{"trace_id", trace},
		{"correlation_id", corr},
		{"error_uri", "https://" + hostOf(r, s) + "/error?code=" + fmt.Sprint(aadsts)},
	}
	s.tenant.count(func(st *statsData) { st.rejected++ })
	writeJSON(w, status, "application/json; charset=utf-8", body)
}

func hostOf(r *http.Request, s *Server) string {
	if r.Host != "" {
		return r.Host
	}
	return strings.TrimPrefix(s.URL(), "https://")
}

func (s *Server) tenantMatches(t string) bool {
	return strings.EqualFold(t, s.cfg.TenantID)
}

// handleOpenIDConfiguration answers GET /{tenant}/v2.0/.well-known/openid-configuration.
func (s *Server) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request, tenant string) {
	if !s.tenantMatches(tenant) {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	base := "https://" + hostOf(r, s) + "/" + tenant
	body := ordered{
		{"token_endpoint", base + "/oauth2/v2.0/token"},
		{"token_endpoint_auth_methods_supported", []string{"client_secret_post", "private_key_jwt", "client_secret_basic"}},
		{"jwks_uri", base + "/discovery/v2.0/keys"},
		{"response_modes_supported", []string{"query", "fragment", "form_post"}},
		{"subject_types_supported", []string{"pairwise"}},
		{"id_token_signing_alg_values_supported", []string{"RS256"}},
		{"response_types_supported", []string{"code", "id_token", "code id_token", "id_token token"}},
		{"scopes_supported", []string{"openid", "profile", "email", "offline_access"}},
		{"issuer", "https://" + hostOf(r, s) + "/" + s.cfg.TenantID + "/v2.0"},
		{"request_uri_parameter_supported", false},
		{"userinfo_endpoint", "https://" + hostOf(r, s) + "/oidc/userinfo"},
		{"authorization_endpoint", base + "/oauth2/v2.0/authorize"},
		{"device_authorization_endpoint", base + "/oauth2/v2.0/devicecode"},
		{"http_logout_supported", true},
		{"frontchannel_logout_supported", true},
		{"end_session_endpoint", base + "/oauth2/v2.0/logout"},
		{"claims_supported", []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver"}},
		{"tenant_region_scope", "EU"},
		{"cloud_instance_name", "microsoftonline.com"},
		{"cloud_graph_host_name", "graph.windows.net"},
		{"msgraph_host", hostOf(r, s)},
		{"rbac_url", "https://pas.windows.net"},
	}
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", body)
}

// handleInstanceDiscovery answers GET /common/discovery/instance, which MSAL
// calls unless instance discovery is disabled.
func (s *Server) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := hostOf(r, s)
	body := ordered{
		{"tenant_discovery_endpoint", "https://" + host + "/" + s.cfg.TenantID + "/v2.0/.well-known/openid-configuration"},
		{"api-version", "1.1"},
		{"metadata", []ordered{{
			{"preferred_network", host},
			{"preferred_cache", host},
			{"aliases", []string{host}},
		}}},
	}
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", body)
}

// handleToken answers POST /{tenant}/oauth2/v2.0/token for the client
// credentials grant, refusing wrong credentials as Entra ID does.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.Method != http.MethodPost {
		s.oauthError(w, r, http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST requests.")
		return
	}
	if !s.tenantMatches(tenant) {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	switch gt := f.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		s.oauthError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
		return
	default:
		s.oauthError(w, r, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'. The simulator supports client_credentials only.", gt))
		return
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'.")
		return
	}
	if clientID != s.cfg.ClientID {
		s.oauthError(w, r, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, s.cfg.TenantID))
		return
	}
	secret := f.Get("client_secret")
	if secret == "" {
		if f.Get("client_assertion") != "" {
			s.oauthError(w, r, http.StatusUnauthorized, "invalid_client", 700027,
				"Client assertion failed signature validation. The simulator accepts client secrets only.")
			return
		}
		s.oauthError(w, r, http.StatusBadRequest, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	}
	if secret != s.cfg.ClientSecret {
		// Entra ID answers 401 here (AADSTS7000215). The secret itself is
		// never echoed or logged.
		s.oauthError(w, r, http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID))
		return
	}
	scopeOK := false
	for _, sc := range strings.Fields(f.Get("scope")) {
		if strings.HasSuffix(sc, "/.default") {
			scopeOK = true
		}
	}
	if !scopeOK {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", f.Get("scope")))
		return
	}
	tok := s.auth.issue(clientID)
	s.tenant.count(func(st *statsData) { st.issued++ })
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", ordered{
		{"token_type", "Bearer"},
		{"expires_in", int(accessTokenLifetime / time.Second)},
		{"ext_expires_in", int(accessTokenLifetime / time.Second)},
		{"access_token", tok},
	})
}
