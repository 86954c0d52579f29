package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// access is what a caller may do. Roles are ordered: admin includes support.
type access int

const (
	roleNone    access = iota
	roleSupport        // read-only
	roleAdmin          // everything
	// roleAnonymous marks routes open to anyone (health).
	roleAnonymous access = -1
)

func (r access) String() string {
	switch r {
	case roleSupport:
		return "support"
	case roleAdmin:
		return "admin"
	case roleAnonymous:
		return "anonymous"
	}
	return "none"
}

// Entra app roles (the "value" of the app role in the app registration).
const (
	AppRoleAdmin   = "EntraSync.Admin"
	AppRoleSupport = "EntraSync.Support"
)

// caller is who made a request.
type caller struct {
	// Name is recorded in audit rows and runs: the principal's name, or
	// "key:admin" / "key:support" for API keys. Never a secret.
	Name string
	Role access
	// How says how the caller was identified ("easyauth", "key", "").
	How string
}

const principalHeader = "X-Ms-Client-Principal"

// clientPrincipal is App Service Authentication's x-ms-client-principal,
// base64-encoded JSON.
type clientPrincipal struct {
	AuthType string `json:"auth_typ"`
	Claims   []struct {
		Type  string `json:"typ"`
		Value string `json:"val"`
	} `json:"claims"`
	NameType string `json:"name_typ"`
	RoleType string `json:"role_typ"`
}

const (
	claimRoleLong = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	claimNameLong = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	claimUPNLong  = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
)

// authenticator identifies callers.
type authenticator struct {
	admin, support [][]byte // hex SHA-256 of the keys granting each role
	trustEasyAuth  bool
}

// identify returns the caller of r. A request without credentials is
// roleNone with no error; credentials that are present but wrong are an
// EUNAUTHORIZED error.
func (a *authenticator) identify(r *http.Request) (caller, error) {
	var best caller
	if a.trustEasyAuth {
		if h := r.Header.Get(principalHeader); h != "" {
			p, err := a.principal(h, r.Header.Get("X-Ms-Client-Principal-Name"))
			if err != nil {
				return caller{}, err
			}
			best = p
		}
	}
	key := r.Header.Get("X-Functions-Key")
	if key == "" {
		key = r.URL.Query().Get("code")
	}
	if key != "" {
		role := a.keyRole(key)
		switch {
		case role > best.Role:
			best = caller{Name: "key:" + role.String(), Role: role, How: "key"}
		case role == roleNone && best.How == "":
			return caller{}, &dirsync.Error{Code: dirsync.EUNAUTHORIZED,
				Message: "the key is not an admin or support key of this API",
				Hint:    "Send the admin or support key in the x-functions-key header (locally, `make run` prints both)."}
		}
	}
	return best, nil
}

func (a *authenticator) keyRole(key string) access {
	sum := sha256.Sum256([]byte(key))
	h := []byte(hex.EncodeToString(sum[:]))
	// Compare with every hash, so timing does not tell which list matched.
	role := roleNone
	for _, want := range a.support {
		if subtle.ConstantTimeCompare(h, want) == 1 {
			role = max(role, roleSupport)
		}
	}
	for _, want := range a.admin {
		if subtle.ConstantTimeCompare(h, want) == 1 {
			role = roleAdmin
		}
	}
	return role
}

func (a *authenticator) principal(header, nameHeader string) (caller, error) {
	bad := &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Message: "the x-ms-client-principal header could not be read",
		Hint: "It is set by App Service Authentication; sign in again, or check the function app's authentication settings."}
	if len(header) > 64<<10 {
		return caller{}, bad
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(header, "=")); err != nil {
			return caller{}, bad
		}
	}
	var p clientPrincipal
	if err := json.Unmarshal(raw, &p); err != nil {
		return caller{}, bad
	}
	roleType := p.RoleType
	if roleType == "" {
		roleType = "roles"
	}
	c := caller{Role: roleNone, How: "easyauth"}
	names := map[string]string{}
	for _, cl := range p.Claims {
		switch cl.Type {
		case roleType, "roles", claimRoleLong:
			switch cl.Value {
			case AppRoleAdmin:
				c.Role = roleAdmin
			case AppRoleSupport:
				c.Role = max(c.Role, roleSupport)
			}
		}
		if names[cl.Type] == "" {
			names[cl.Type] = cl.Value
		}
	}
	for _, t := range []string{p.NameType, "preferred_username", claimUPNLong, claimNameLong, "name"} {
		if t != "" && names[t] != "" {
			c.Name = names[t]
			break
		}
	}
	if c.Name == "" {
		c.Name = nameHeader
	}
	if c.Name == "" {
		c.Name = "unnamed principal"
	}
	c.Name = cleanName(c.Name)
	return c, nil
}

// cleanName keeps a principal name printable and short: it ends up in audit
// rows, run logs and log lines.
func cleanName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			continue
		}
		b.WriteRune(r)
		if b.Len() >= 256 {
			break
		}
	}
	return b.String()
}

// authorize checks that c may call a route needing role need.
func authorize(c caller, need access, trustEasyAuth bool) error {
	if need == roleAnonymous || c.Role >= need {
		return nil
	}
	if c.How == "" {
		hint := "Send an API key in the x-functions-key header (the admin or support key; locally `make run` prints both)."
		if trustEasyAuth {
			hint = "Sign in (App Service Authentication) with an account that has the EntraSync.Support or EntraSync.Admin app role, or send an API key in the x-functions-key header."
		}
		return &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Message: "this endpoint needs a signed-in caller or an API key", Hint: hint}
	}
	if need == roleAdmin && c.Role == roleSupport {
		return &dirsync.Error{Code: dirsync.EFORBIDDEN, Message: "this action needs the admin role; you have the support role (read-only)",
			Hint: "Ask an admin to do it, or to give you the EntraSync.Admin app role (or use the admin key)."}
	}
	return &dirsync.Error{Code: dirsync.EFORBIDDEN,
		Message: fmt.Sprintf("this endpoint needs the %s role; %s has no EntraSync role", need, c.Name),
		Hint:    "Ask an admin to assign you the EntraSync.Support (read) or EntraSync.Admin app role in Entra ID (Enterprise applications, Users and groups)."}
}
