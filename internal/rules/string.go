package rules

import (
	"strings"
	"time"
	"unicode/utf8"
)

// String returns the rule in normal form: documented spellings and case
// (user.mailNickName, -startsWith), hyphens, double-quoted strings, and only
// the parentheses precedence needs (plus those around a -not's condition and
// an -any/-all's condition, for the reader). Parse(r.String()) gives a rule
// with the same String() and the same meaning, unless the normal form is
// longer than MaxLength: it can be longer than the rule as written (every
// value quoted, "and" written "-and"), and Entra, like Parse, refuses a rule
// over the limit. TooLong reports that case; keep such a rule as written.
func (r *Rule) String() string {
	var b strings.Builder
	write(&b, r.root)
	return b.String()
}

func write(b *strings.Builder, n node) {
	switch n := n.(type) {
	case logical:
		joiner := " -or "
		if n.and {
			joiner = " -and "
		}
		for i, term := range n.terms {
			if i > 0 {
				b.WriteString(joiner)
			}
			// A nested -or (or -and in -and) came from parentheses; keep them so
			// the tree, and so String(), survives a re-parse.
			inner, isLogical := term.(logical)
			paren := isLogical && (!inner.and || n.and)
			writeMaybeParen(b, term, paren)
		}
	case not:
		b.WriteString("-not ")
		_, isNot := n.term.(not)
		writeMaybeParen(b, n.term, !isNot)
	case quantifier:
		b.WriteString("user." + n.prop.rule)
		if n.all {
			b.WriteString(" -all ")
		} else {
			b.WriteString(" -any ")
		}
		writeMaybeParen(b, n.body, true)
	case directReports:
		b.WriteString(`Direct Reports for "` + n.managerID + `"`)
	case comparison:
		b.WriteString(subjectText(n.subject))
		b.WriteString(" " + operatorNames[n.op] + " ")
		writeLiteral(b, n.value)
	}
}

// TooLong is true when the normal form, String(), is longer than MaxLength
// characters, so that Entra would refuse it although the rule as written
// was accepted.
func (r *Rule) TooLong() bool {
	return utf8.RuneCountInString(r.String()) > MaxLength
}

func writeMaybeParen(b *strings.Builder, n node, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	write(b, n)
	if paren {
		b.WriteByte(')')
	}
}

func writeLiteral(b *strings.Builder, lit literal) {
	switch lit.kind {
	case litNull:
		b.WriteString("null")
	case litString:
		b.WriteString(quote(lit.str))
	case litBool:
		if lit.b {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case litList:
		b.WriteByte('[')
		for i, s := range lit.list {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(s))
		}
		b.WriteByte(']')
	case litTime:
		b.WriteString(quote(lit.t.Format(time.RFC3339Nano)))
	case litNow:
		b.WriteString("system.now")
		if lit.shift.text != "" {
			if lit.shift.minus {
				b.WriteString(" -minus ")
			} else {
				b.WriteString(" -plus ")
			}
			b.WriteString(lit.shift.text)
		}
	}
}

// quote writes s as a double-quoted string, escaping " and ` with a backtick.
func quote(s string) string {
	return `"` + strings.NewReplacer("`", "``", `"`, "`\"").Replace(s) + `"`
}
