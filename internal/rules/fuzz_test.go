package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/internal/rules"
)

// FuzzParse checks that Parse never panics, that every error is an *Error
// inside the rule, that Match never panics on a parsed rule, and that a rule
// that parses re-parses from its String() to the same String() (a String()
// over MaxLength is refused by Parse with the length error and re-parses
// without the limit).
//
//	go test ./internal/rules/ -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`user.department -eq "Sales"`,
		`(user.department -eq "Sales") -and -not (user.jobTitle -startsWith "SDE")`,
		`user.assignedPlans -any (assignedPlan.servicePlanId -eq "efb87545-963c-4e0d-99df-69c6916d9eb0" -and assignedPlan.capabilityStatus -eq "Enabled")`,
		`(user.proxyAddresses -any (_ -startsWith "contoso"))`,
		`user.employeehiredate -ge system.now -plus p1d`,
		`user.employeehiredate -le 2020-06-10T18:13:20Z`,
		"user.department -eq `\"Sales`\"",
		`user.mail –ne null`,
		`user.city -notin ['Lagos', 'O''Brien']`,
		`Direct Reports for "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"`,
		`user.otherMails -any _ -eq "a"`,
		`not user.accountEnabled eq TRUE or user.displayName -match "^Da.*"`,
		"user.department -eq \"a``b`\"\"\n-and user.city -eq $null",
		`user.extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber -eq 123`,
		`device.deviceOSType -eq "iPad"`,
		`((((`,
		"\"unterminated `\"",
	} {
		f.Add(seed)
	}
	users := []rules.User{david, empty, rules.Attributes{}}
	f.Fuzz(func(t *testing.T, text string) {
		rule, err := rules.Parse(text)
		if err != nil {
			e, ok := err.(*rules.Error)
			if !ok {
				t.Fatalf("Parse(%q) error %T, want *rules.Error", text, err)
			}
			if e.Pos < 0 || e.Pos > len(text) || e.Line < 1 || e.Column < 1 || e.Msg == "" {
				t.Fatalf("Parse(%q) error %#v out of the rule", text, e)
			}
			return
		}
		normal := rule.String()
		if rule.TooLong() {
			// The normal form quotes every value and hyphenates every
			// operator, so it can pass the limit the rule as written kept:
			// Parse must say so, and the form must still mean the same.
			var e *rules.Error
			if _, err := rules.Parse(normal); !errors.As(err, &e) || !strings.Contains(e.Msg, "Entra allows at most 3,072") {
				t.Fatalf("Parse(%q) ok and its String() is over the limit, but Parse(String()) says %v, want the length error", text, err)
			}
		}
		again, err := rules.ParseUnlimited(normal)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String() %q does not parse: %v", text, normal, err)
		}
		if got := again.String(); got != normal {
			t.Fatalf("Parse(%q).String() = %q, which re-parses to %q", text, normal, got)
		}
		for _, u := range users {
			first, err1 := rule.Match(u, rules.Env{Now: now})
			second, err2 := again.Match(u, rules.Env{Now: now})
			if first != second || (err1 == nil) != (err2 == nil) {
				t.Fatalf("%q and its String() %q match differently: %v/%v, %v/%v", text, normal, first, err1, second, err2)
			}
		}
		_ = rule.Properties()
	})
}
