package rules

import (
	"fmt"
	"time"
)

// Kind says which field of a Value holds the attribute.
type Kind int

// The kinds of user attribute values.
const (
	Null    Kind = iota // absent or null in Graph
	String              // Value.Str
	Bool                // Value.Bool
	Strings             // Value.Strs: otherMails, proxyAddresses, businessPhones
	Objects             // Value.Objs: assignedPlans
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case String:
		return "string"
	case Bool:
		return "bool"
	case Strings:
		return "strings"
	case Objects:
		return "objects"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Value is one user attribute as Graph returned it. The zero Value is null.
type Value struct {
	Kind Kind
	Str  string
	Bool bool
	Strs []string
	// Objs holds one map per object, keyed by the object's Graph property
	// names; for assignedPlans: "capabilityStatus", "service", "servicePlanId".
	Objs []map[string]string
}

// StringValue, BoolValue, StringsValue and ObjectsValue build a Value of their kind.
func StringValue(s string) Value                   { return Value{Kind: String, Str: s} }
func BoolValue(b bool) Value                       { return Value{Kind: Bool, Bool: b} }
func StringsValue(s ...string) Value               { return Value{Kind: Strings, Strs: s} }
func ObjectsValue(objs ...map[string]string) Value { return Value{Kind: Objects, Objs: objs} }

// User gives a user's attribute values by the names Rule.Properties returns.
// An attribute the user does not have is the zero Value (null).
type User interface {
	Get(name string) Value
}

// Attributes is a User held in a map, for the engine and for tests.
type Attributes map[string]Value

// Get returns the attribute, or null when it is absent.
func (a Attributes) Get(name string) Value { return a[name] }

// Env is what a rule needs from outside the user.
type Env struct {
	// Now is the instant system.now stands for. Zero means time.Now(); pass it
	// explicitly so one run evaluates every user against the same instant.
	Now time.Time
}
