package graphsim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
)

// State tokens ($skiptoken, $deltatoken) are self-contained: the round's
// position and options, signed so a client cannot forge or corrupt one
// unnoticed. No server memory is spent per round, so a token stays usable as
// long as Graph's rules say, however many rounds run.

// Token kinds.
const (
	tokUsersDelta  = "u"
	tokGroupsDelta = "g"
	tokMembers     = "m"
	tokUsersList   = "l"
)

// Phases of a delta round.
const (
	phaseEnumerate = 0 // first round: the current state of every object
	phaseChanges   = 1 // a round started from a deltaLink: changes only
)

type stateToken struct {
	Instance string   `json:"i"`
	Kind     string   `json:"k"`
	Delta    bool     `json:"d,omitempty"` // a $deltatoken (round finished) rather than a $skiptoken
	Phase    int      `json:"p,omitempty"`
	Base     uint64   `json:"b,omitempty"` // enumerate: version at round start; changes: V of (V,E]
	End      uint64   `json:"e,omitempty"` // changes: E of (V,E]
	Cursor   string   `json:"c,omitempty"` // last object id served (enumerations, lists)
	Pos      int      `json:"o,omitempty"` // log position, or index of the group in progress
	Off      int      `json:"f,omitempty"` // offset in the current group's member list
	Page     int      `json:"n,omitempty"` // pages served so far in this round
	Select   []string `json:"s,omitempty"`
	NoSelect bool     `json:"a,omitempty"` // the round had no $select (Graph's defaults)
	Filter   []string `json:"q,omitempty"` // $filter=id eq ... ids, sorted
	Size     int      `json:"z,omitempty"` // page size asked for at round start
	Issued   int64    `json:"t"`           // unix nanoseconds by Config.Now
	Epoch    int      `json:"x,omitempty"` // Tenant.epoch when issued
	Group    string   `json:"g,omitempty"` // transitiveMembers: the group
	Cast     string   `json:"r,omitempty"` // transitiveMembers: "user", "group" or ""
	Expr     string   `json:"w,omitempty"` // users list: the $filter expression
	Empty    bool     `json:"m,omitempty"` // quirk: this page is an extra empty one
}

type tokenCodec struct {
	instance string
	key      []byte
}

// The signing key is fixed: tokens are not secrets, only tamper-evident.
// A token from an earlier simulator process verifies but names another
// instance, and is answered as expired: its sync state is gone, as a
// Graph token would be after a tenant migration.
var tokenKey = []byte("graphsim state token v1")

func newTokenCodec() *tokenCodec {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &tokenCodec{instance: hex.EncodeToString(b[:]), key: tokenKey}
}

var errBadToken = errors.New("the token is malformed or was not issued by this service")

func (c *tokenCodec) encode(t stateToken) string {
	t.Instance = c.instance
	body, _ := json.Marshal(t)
	mac := hmac.New(sha256.New, c.key)
	mac.Write(body)
	sig := mac.Sum(nil)[:16]
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// decode verifies and parses a token. foreign reports a well-formed token
// from another simulator instance.
func (c *tokenCodec) decode(s string) (t stateToken, foreign bool, err error) {
	body64, sig64, ok := strings.Cut(s, ".")
	if !ok {
		return t, false, errBadToken
	}
	body, err1 := base64.RawURLEncoding.DecodeString(body64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return t, false, errBadToken
	}
	mac := hmac.New(sha256.New, c.key)
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)[:16]) {
		return t, false, errBadToken
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return t, false, errBadToken
	}
	return t, t.Instance != c.instance, nil
}
