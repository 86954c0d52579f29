package rules

import (
	"fmt"
	"strings"
	"time"
)

// Match reports whether the user satisfies the rule.
//
// It returns an error only when the user's value does not have the kind the
// property has (a Bool for department, an employeeHireDate that is not a
// date): that is a bug in how the engine reads the user, never a reason to
// treat the user as a member or not. A property the user lacks is null.
func (r *Rule) Match(u User, env Env) (bool, error) {
	now := env.Now
	if now.IsZero() {
		now = time.Now()
	}
	m := matcher{user: u, now: now}
	return m.eval(r.root, item{})
}

type matcher struct {
	user User
	now  time.Time
}

// item is the element -any/-all is testing: a string, or an assigned plan.
type item struct {
	str  string
	plan map[string]string
}

func (m *matcher) eval(n node, it item) (bool, error) {
	switch n := n.(type) {
	case logical:
		for _, term := range n.terms {
			ok, err := m.eval(term, it)
			if err != nil {
				return false, err
			}
			if ok != n.and {
				return ok, nil // short-circuit: false for -and, true for -or
			}
		}
		return n.and, nil
	case not:
		ok, err := m.eval(n.term, it)
		return !ok && err == nil, err
	case directReports:
		manager, err := m.stringOf("manager", m.user.Get("manager"))
		return strings.EqualFold(manager, n.managerID), err
	case quantifier:
		return m.evalQuantifier(n)
	case comparison:
		return m.evalComparison(n, it)
	}
	panic(fmt.Sprintf("rules: unknown node %T", n))
}

func (m *matcher) evalQuantifier(q quantifier) (bool, error) {
	var items []item
	v := m.user.Get(q.prop.graph)
	switch {
	case v.Kind == Null:
	case q.prop.typ == stringsProperty && v.Kind == Strings:
		for _, s := range v.Strs {
			items = append(items, item{str: s})
		}
	case q.prop.typ == stringsProperty && v.Kind == String:
		items = []item{{str: v.Str}}
	case q.prop.typ == assignedPlansProperty && v.Kind == Objects:
		for _, o := range v.Objs {
			items = append(items, item{plan: o})
		}
	default:
		return false, kindError(q.prop, v)
	}
	// -all over no items is true: the docs' example
	// user.assignedPlans -all (assignedPlan.servicePlanId -eq null) selects
	// "users who have no assigned service plan".
	for _, it := range items {
		ok, err := m.eval(q.body, it)
		if err != nil {
			return false, err
		}
		if ok != q.all {
			return ok, nil
		}
	}
	return q.all, nil
}

func kindError(p property, v Value) error {
	return fmt.Errorf("user property %s (Graph %s) holds a value of kind %s, which user.%s can't be compared with", p.rule, p.graph, v.Kind, p.rule)
}

func (m *matcher) evalComparison(c comparison, it item) (bool, error) {
	switch {
	case c.subject.item:
		return compareString(c.op, c.value, it.str), nil
	case c.subject.field != "":
		return compareString(c.op, c.value, it.plan[c.subject.field]), nil
	}
	p := c.subject.prop
	v := m.user.Get(p.graph)
	switch p.typ {
	case boolProperty:
		return m.compareBool(c, v)
	case dateProperty:
		return m.compareDate(c, v)
	case stringsProperty, assignedPlansProperty:
		return m.compareCollection(c, v)
	}
	s, err := m.stringOf(p.rule, v)
	return compareString(c.op, c.value, s), err
}

// stringOf is a single-valued string property's value; null is "".
func (m *matcher) stringOf(name string, v Value) (string, error) {
	switch v.Kind {
	case Null:
		return "", nil
	case String:
		return v.Str, nil
	case Strings: // businessPhones holds telephoneNumber as a collection of one
		if len(v.Strs) == 0 {
			return "", nil
		}
		return v.Strs[0], nil
	}
	return "", fmt.Errorf("user property %s holds a value of kind %s where a string was expected", name, v.Kind)
}

// compareString applies a string operator, ignoring case. Null and the empty
// string are the same value: Graph never returns an empty string for these
// properties, and the docs' own example for "no plan" was once written
// -eq "" and is now written -eq null.
func compareString(op operator, lit literal, s string) bool {
	if positive, ok := op.negated(); ok {
		return !compareString(positive, lit, s)
	}
	switch op {
	case opEq:
		return strings.EqualFold(s, lit.str) // null is "", so -eq null is s == ""
	case opStartsWith:
		return strings.HasPrefix(strings.ToLower(s), strings.ToLower(lit.str))
	case opEndsWith:
		return strings.HasSuffix(strings.ToLower(s), strings.ToLower(lit.str))
	case opContains:
		return strings.Contains(strings.ToLower(s), strings.ToLower(lit.str))
	case opMatch:
		return lit.re.MatchString(s)
	case opIn:
		for _, candidate := range lit.list {
			if strings.EqualFold(s, candidate) {
				return true
			}
		}
	}
	return false
}

// compareCollection applies an operator to a multi-value property without
// -any/-all, as the docs' examples do (user.otherMails -startsWith "alias@"):
// a positive operator holds when some value satisfies it, a negated one when
// no value satisfies its positive form (user.proxyAddresses -notEndsWith
// "@outlook.com": no address ends so). -eq null holds for an empty collection.
func (m *matcher) compareCollection(c comparison, v Value) (bool, error) {
	var values []string
	isPlans := c.subject.prop.typ == assignedPlansProperty
	switch {
	case v.Kind == Null:
	case isPlans && v.Kind == Objects:
		// The parser allows only -eq null and -ne null on assignedPlans itself.
		return (len(v.Objs) == 0) == (c.op == opEq), nil
	case isPlans:
		return false, kindError(c.subject.prop, v)
	case v.Kind == Strings:
		values = v.Strs
	case v.Kind == String:
		values = []string{v.Str}
	default:
		return false, kindError(c.subject.prop, v)
	}
	if c.value.kind == litNull {
		return (len(values) == 0) == (c.op == opEq), nil
	}
	positive, negated := c.op.negated()
	for _, s := range values {
		if compareString(positive, c.value, s) {
			return !negated, nil
		}
	}
	return negated, nil
}

func (m *matcher) compareBool(c comparison, v Value) (bool, error) {
	var isNull, b bool
	switch v.Kind {
	case Null:
		isNull = true
	case Bool:
		b = v.Bool
	case String: // lenient: "true"/"false" as Graph's JSON text
		switch strings.ToLower(v.Str) {
		case "true":
			b = true
		case "false":
		case "":
			isNull = true
		default:
			return false, kindError(c.subject.prop, v)
		}
	default:
		return false, kindError(c.subject.prop, v)
	}
	eq := isNull
	if c.value.kind != litNull {
		eq = !isNull && b == c.value.b
	}
	return eq == (c.op == opEq), nil
}

func (m *matcher) compareDate(c comparison, v Value) (bool, error) {
	var when time.Time
	isNull := true
	switch v.Kind {
	case Null:
	case String:
		if v.Str != "" {
			t, ok := parseTime(v.Str)
			if !ok {
				return false, fmt.Errorf("user property %s holds %q, which is not a date such as 2020-06-10T18:13:20Z", c.subject.prop.graph, v.Str)
			}
			when, isNull = t, false
		}
	default:
		return false, kindError(c.subject.prop, v)
	}
	if c.value.kind == litNull {
		return isNull == (c.op == opEq), nil
	}
	if isNull {
		return c.op == opNe, nil // a missing date is neither before nor after any
	}
	other := c.value.t
	if c.value.kind == litNow {
		other = c.value.shift.apply(m.now)
	}
	switch c.op {
	case opEq:
		return when.Equal(other), nil
	case opNe:
		return !when.Equal(other), nil
	case opLe:
		return !when.After(other), nil
	}
	return !when.Before(other), nil // opGe
}

func (d duration) apply(t time.Time) time.Time {
	sign := 1
	if d.minus {
		sign = -1
	}
	t = t.AddDate(sign*d.years, sign*d.months, sign*d.days)
	return t.Add(time.Duration(sign) * (time.Duration(d.hours)*time.Hour + time.Duration(d.minutes)*time.Minute + time.Duration(d.seconds)*time.Second))
}
