package devhost

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Keys are the function keys the devhost checks, like the host's:
// authLevel "function" accepts one of the function's keys, a host key or the
// master key; authLevel "admin" and the admin API accept the master key only.
type Keys struct {
	Master string `json:"masterKey"`
	// Host keys by name (the host names its first one "default").
	Host map[string]string `json:"hostKeys"`
	// Function keys by function name, then key name.
	Function map[string]map[string]string `json:"functionKeys"`
}

// GenerateKeys returns a random master key and a random "default" host key.
func GenerateKeys() (Keys, error) {
	master, err := randomKey()
	if err != nil {
		return Keys{}, err
	}
	host, err := randomKey()
	if err != nil {
		return Keys{}, err
	}
	return Keys{Master: master, Host: map[string]string{"default": host}}, nil
}

func randomKey() (string, error) {
	b := make([]byte, 40)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// LoadKeys reads keys from a JSON file:
// {"masterKey": "...", "hostKeys": {"default": "..."}, "functionKeys": {"Api": {"default": "..."}}}.
func LoadKeys(path string) (Keys, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Keys{}, fmt.Errorf("reading the keys file: %w", err)
	}
	var k Keys
	if err := json.Unmarshal(raw, &k); err != nil {
		return Keys{}, fmt.Errorf("%s is not a keys file (expected {\"masterKey\": ..., \"hostKeys\": {...}, \"functionKeys\": {...}}): %v", path, err)
	}
	if err := k.validate(); err != nil {
		return Keys{}, fmt.Errorf("%s: %v", path, err)
	}
	return k, nil
}

func (k Keys) validate() error {
	if k.Master == "" {
		return fmt.Errorf("masterKey is empty: the admin API and admin-level functions need one")
	}
	check := func(what, v string) error {
		if len(v) < 8 {
			return fmt.Errorf("%s is shorter than 8 characters", what)
		}
		return nil
	}
	if err := check("masterKey", k.Master); err != nil {
		return err
	}
	for name, v := range k.Host {
		if err := check("hostKeys."+name, v); err != nil {
			return err
		}
	}
	for fn, m := range k.Function {
		for name, v := range m {
			if err := check("functionKeys."+fn+"."+name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// grant is what a presented key was: its level ("Function" or "Admin") and
// name, for the identity the host adds to the request.
type grant struct {
	level string
	name  string
}

// presentedKey returns the key of a request: the x-functions-key header, else
// the "code" query parameter.
func presentedKey(r *http.Request) string {
	if v := r.Header.Get("x-functions-key"); v != "" {
		return v
	}
	return r.URL.Query().Get("code")
}

func keyEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authorize checks a presented key against authLevel for function fn.
func (k Keys) authorize(authLevel, fn, presented string) (grant, bool) {
	if keyEqual(presented, k.Master) {
		return grant{level: "Admin", name: "master"}, true
	}
	switch authLevel {
	case "anonymous":
		return grant{}, true
	case "admin":
		return grant{}, false
	}
	for name, v := range k.Host {
		if keyEqual(presented, v) {
			return grant{level: "Function", name: name}, true
		}
	}
	for f, m := range k.Function {
		if !strings.EqualFold(f, fn) {
			continue
		}
		for name, v := range m {
			if keyEqual(presented, v) {
				return grant{level: "Function", name: name}, true
			}
		}
	}
	return grant{}, false
}
