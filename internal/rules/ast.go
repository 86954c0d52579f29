package rules

import (
	"regexp"
	"time"
)

// operator is a comparison operator.
type operator int

const (
	opEq operator = iota
	opNe
	opStartsWith
	opNotStartsWith
	opEndsWith
	opNotEndsWith
	opContains
	opNotContains
	opMatch
	opNotMatch
	opIn
	opNotIn
	opLe
	opGe
)

// operatorNames are the documented spellings, used by String().
var operatorNames = [...]string{
	opEq: "-eq", opNe: "-ne",
	opStartsWith: "-startsWith", opNotStartsWith: "-notStartsWith",
	opEndsWith: "-endsWith", opNotEndsWith: "-notEndsWith",
	opContains: "-contains", opNotContains: "-notContains",
	opMatch: "-match", opNotMatch: "-notMatch",
	opIn: "-in", opNotIn: "-notIn",
	opLe: "-le", opGe: "-ge",
}

// negated reports whether op is the negation of another operator, and which.
func (op operator) negated() (positive operator, ok bool) {
	switch op {
	case opNe:
		return opEq, true
	case opNotStartsWith:
		return opStartsWith, true
	case opNotEndsWith:
		return opEndsWith, true
	case opNotContains:
		return opContains, true
	case opNotMatch:
		return opMatch, true
	case opNotIn:
		return opIn, true
	}
	return op, false
}

// node is one part of a parsed rule.
type node interface{ isNode() }

// logical is -and or -or over two or more terms.
type logical struct {
	and   bool
	terms []node
}

// not is -not.
type not struct{ term node }

// quantifier is user.<collection> -any (...) or -all (...).
type quantifier struct {
	prop property
	all  bool
	body node
}

// directReports is Direct Reports for "<manager id>".
type directReports struct{ managerID string }

// subject is what a comparison reads: a user property, the item of a string
// collection (_), or a field of an assignedPlans object (assignedPlan.<field>).
type subject struct {
	prop  property // a user property; zero inside -any/-all
	item  bool     // _
	field string   // assignedPlan field, Graph spelling
}

// comparison is <subject> <operator> <value>.
type comparison struct {
	subject subject
	op      operator
	value   literal
}

type literalKind int

const (
	litNull literalKind = iota
	litString
	litBool
	litList
	litTime
	litNow // system.now, with an optional -plus or -minus duration
)

// literal is the value side of a comparison.
type literal struct {
	kind  literalKind
	str   string   // litString
	list  []string // litList
	b     bool     // litBool
	t     time.Time
	re    *regexp.Regexp // compiled for -match and -notMatch
	shift duration       // litNow
}

// duration is an ISO 8601 duration such as P1D or PT12H, with a sign from
// -plus or -minus.
type duration struct {
	text                    string // as String() writes it, upper-case, "" for none
	minus                   bool
	years, months, days     int
	hours, minutes, seconds int
}

func (logical) isNode()       {}
func (not) isNode()           {}
func (quantifier) isNode()    {}
func (directReports) isNode() {}
func (comparison) isNode()    {}
