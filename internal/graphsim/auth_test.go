package graphsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTokenEndpoint(t *testing.T) {
	c := startSim(t, Config{Users: 2, TenantID: "t-1", ClientID: "app-1", ClientSecret: "s3cr3t-value"})
	good := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {"app-1"},
		"client_secret": {"s3cr3t-value"},
		"scope":         {"https://graph.microsoft.com/.default"},
		"claims":        {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
	}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range good {
			f[key] = vals
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	tests := []struct {
		name       string
		tenant     string
		form       url.Values
		status     int
		errCode    string
		aadsts     int
		notInReply string
	}{
		{"right credentials", "t-1", good, 200, "", 0, ""},
		{"wrong secret", "t-1", with("client_secret", "guess"), 401, "invalid_client", 7000215, "guess"},
		{"no secret", "t-1", with("client_secret", ""), 400, "invalid_client", 7000216, ""},
		{"unknown client", "t-1", with("client_id", "other-app"), 400, "unauthorized_client", 700016, ""},
		{"unknown tenant", "t-2", good, 400, "invalid_request", 90002, ""},
		{"scope without /.default", "t-1", with("scope", "User.Read"), 400, "invalid_scope", 1002012, ""},
		{"other grant", "t-1", with("grant_type", "password"), 400, "unsupported_grant_type", 70003, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := c.postForm(c.sim.URL()+"/"+tt.tenant+"/oauth2/v2.0/token", tt.form)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("not JSON: %s", body)
			}
			if tt.status == 200 {
				if m["token_type"] != "Bearer" || m["expires_in"] != 3599.0 || m["ext_expires_in"] != 3599.0 || m["access_token"] == "" {
					t.Errorf("token answer %v", m)
				}
				return
			}
			if m["error"] != tt.errCode {
				t.Errorf("error %v, want %s", m["error"], tt.errCode)
			}
			if diff := cmp.Diff([]any{float64(tt.aadsts)}, m["error_codes"]); diff != "" {
				t.Errorf("error_codes (-want +got):\n%s", diff)
			}
			desc, _ := m["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, "Trace ID:") {
				t.Errorf("error_description %q is not AADSTS-shaped", desc)
			}
			if strings.Contains(string(body), "s3cr3t-value") || (tt.notInReply != "" && strings.Contains(string(body), tt.notInReply)) {
				t.Errorf("the answer echoes a secret: %s", body)
			}
		})
	}
	stats := c.sim.Tenant().Stats()
	if stats.TokenRequestsRejected != 6 || stats.TokensIssued != 2 { // startSim took one too
		t.Errorf("stats: %d rejected, %d issued; want 6 and 2", stats.TokenRequestsRejected, stats.TokensIssued)
	}
}

func TestOpenIDConfiguration(t *testing.T) {
	c := startSim(t, Config{TenantID: "contoso-tenant"})
	resp, body := c.do(http.MethodGet, c.sim.URL()+"/contoso-tenant/v2.0/.well-known/openid-configuration", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	base := c.sim.URL() + "/contoso-tenant"
	for k, want := range map[string]string{
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"issuer":                 base + "/v2.0",
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %s", k, m[k], want)
		}
	}
	resp, _ = c.do(http.MethodGet, c.sim.URL()+"/nope/v2.0/.well-known/openid-configuration", nil)
	if resp.StatusCode != 400 {
		t.Errorf("unknown tenant: %d, want 400", resp.StatusCode)
	}
	d := c.get(c.sim.URL()+"/common/discovery/instance?api-version=1.1", 200)
	if d["tenant_discovery_endpoint"] != c.sim.URL()+"/"+c.sim.cfg.TenantID+"/v2.0/.well-known/openid-configuration" {
		t.Errorf("instance discovery: %v", d)
	}
}

func TestGraphRequiresIssuedBearerToken(t *testing.T) {
	c := startSim(t, Config{Users: 2})
	tests := []struct {
		name, auth string
	}{
		{"no header", ""},
		{"not bearer", "Basic Zm9vOmJhcg=="},
		{"token not issued here", "Bearer sim.made-up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, c.sim.GraphBaseURL()+"/users/delta", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := c.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != 401 || errorCode(t, body) != "InvalidAuthenticationToken" {
				t.Errorf("got %d %s, want 401 InvalidAuthenticationToken", resp.StatusCode, body)
			}
		})
	}
	c.get("/users/delta", 200)
	if got := c.sim.Tenant().Stats().Unauthorized; got != 3 {
		t.Errorf("Stats().Unauthorized = %d, want 3", got)
	}
}
