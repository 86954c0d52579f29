package rules

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrNotSupported is matched (errors.Is) by every *Error about a rule that
// Entra accepts but entrasync does not evaluate, so callers can tell "fix your
// rule" from "this rule works in Entra, not here".
var ErrNotSupported = errors.New("not supported by entrasync")

// Error is what Parse returns for a rule it rejects. It points at the place in
// the rule, as Entra's rule validation does.
type Error struct {
	// Pos is the 0-based byte offset in the rule where the problem starts.
	Pos int
	// Line and Column are 1-based; Column counts characters, not bytes, as an
	// editor shows it. Line is 1 for a rule on one line.
	Line, Column int
	// Msg says what was wrong and, where it helps, what to write instead.
	Msg string
	// Expected names what the parser was looking for at Pos (for example
	// "an operator such as -eq"); empty when the problem is not a missing token.
	Expected string
	// NotSupported is true when Entra accepts the rule and entrasync does not.
	NotSupported bool
}

// Error reads "position 17: ..." on the first line of a rule and
// "line 2, column 5: ..." after it; both count characters from 1.
func (e *Error) Error() string {
	if e.Line > 1 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("position %d: %s", e.Column, e.Msg)
}

// Is makes errors.Is(err, ErrNotSupported) true for NotSupported errors.
func (e *Error) Is(target error) bool { return target == ErrNotSupported && e.NotSupported }

// newError builds an *Error at byte offset pos of rule.
func newError(rule string, pos int, expected, format string, args ...any) *Error {
	if pos > len(rule) {
		pos = len(rule)
	}
	before := rule[:pos]
	line := 1 + strings.Count(before, "\n")
	column := 1 + utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:])
	return &Error{
		Pos: pos, Line: line, Column: column,
		Msg: fmt.Sprintf(format, args...), Expected: expected,
	}
}

// notSupported builds an *Error for a rule Entra accepts and entrasync does not.
func notSupported(rule string, pos int, format string, args ...any) *Error {
	e := newError(rule, pos, "", "not supported by entrasync: "+format, args...)
	e.NotSupported = true
	return e
}
