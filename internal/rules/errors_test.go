package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/rules"
)

// errorShape is the part of an *Error a test pins down: Msg is compared by a
// substring, so a test says which words matter without restating the sentence.
type errorShape struct {
	Pos          int
	Line, Column int
	Expected     string
	NotSupported bool
	Msg          string
}

const guid = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"

func TestParseErrors(t *testing.T) {
	tooLong := `user.department -eq "` + strings.Repeat("x", rules.MaxLength-len(`user.department -eq ""`)+1) + `"`
	tests := []struct {
		name string
		rule string
		want errorShape // Line and Column 0 mean line 1 at Pos+1 (an ASCII rule on one line)
	}{
		{"empty", "", errorShape{Pos: 0, Expected: `a condition such as user.department -eq "Sales"`, Msg: "the rule is empty"}},
		{"only spaces", "  \n ", errorShape{Pos: 4, Line: 2, Column: 2, Expected: `a condition such as user.department -eq "Sales"`, Msg: "the rule is empty"}},
		{"longer than 3,072 characters", tooLong, errorShape{Pos: 3072, Msg: "the rule is 3073 characters long; Entra allows at most 3,072"}},
		{"length counts characters, not bytes", strings.Repeat("é", 3073), errorShape{Pos: 6144, Line: 1, Column: 3073, Msg: "3073 characters"}},

		// groups-troubleshooting.md, error usage
		{"troubleshooting: attribute not supported", `(user.invalidProperty -eq "Value")`, errorShape{Pos: 1, Expected: "a property such as user.department", Msg: "user.invalidProperty is not a user property"}},
		{"troubleshooting: operator not supported on attribute", `(user.accountEnabled -contains true)`, errorShape{Pos: 21, Expected: "-eq or -ne", Msg: "user.accountEnabled is true or false: compare it with -eq or -ne, not -contains"}},
		{"troubleshooting: missing operator", `(user.department -eq "Sales") (user.department -eq "Marketing")`, errorShape{Pos: 30, Expected: "-and or -or", Msg: `expected -and or -or to join another condition, found "("`}},
		{"troubleshooting: bad regular expression", `(user.userPrincipalName -match "*@domain.ext")`, errorShape{Pos: 31, Expected: "a regular expression", Msg: `the regular expression "*@domain.ext" is not valid: missing argument to repetition operator`}},

		// Operators
		{"-not as a comparison with null", `user.mail -not null`, errorShape{Pos: 10, Expected: "an operator such as -eq", Msg: "-not negates a whole condition and can't compare a value: write user.mail -ne"}},
		{"-not as a comparison with $null", `user.mail not $null`, errorShape{Pos: 10, Expected: "an operator such as -eq", Msg: "-not negates a whole condition"}},
		{"unknown operator", `user.department -gt "a"`, errorShape{Pos: 16, Expected: "an operator such as -eq", Msg: `"-gt" is not an operator of Entra's membership rules; use one of -eq`}},
		{"-like is PowerShell, not Entra", `user.department -like "a*"`, errorShape{Pos: 16, Expected: "an operator such as -eq", Msg: `"-like" is not an operator`}},
		{"value where the operator goes", `user.department "Sales"`, errorShape{Pos: 16, Expected: "an operator such as -eq", Msg: `expected an operator such as -eq, found "\"Sales\""`}},
		{"word where the operator goes", `user.department foo "Sales"`, errorShape{Pos: 16, Expected: "an operator such as -eq", Msg: `expected an operator such as -eq, found "foo"`}},
		{"-and where the operator goes", `user.department -and user.city -eq "a"`, errorShape{Pos: 16, Expected: "an operator such as -eq", Msg: `expected an operator such as -eq after user.department, found "-and"`}},
		{"nothing after the operator", `user.department -eq`, errorShape{Pos: 19, Expected: `a value such as "Sales"`, Msg: "expected a value such as \"Sales\" after -eq, found the end of the rule"}},
		{"operator after the operator", `user.department -eq -and user.city -eq "a"`, errorShape{Pos: 20, Expected: `a value such as "Sales"`, Msg: `found "-and"`}},
		{"property as the value", `user.department -eq user.city`, errorShape{Pos: 20, Expected: `a value such as "Sales"`, Msg: "compares a property with a value, not with user.city"}},
		{"-xor between conditions", `user.city -eq "a" -xor user.city -eq "b"`, errorShape{Pos: 18, Expected: "-and or -or", Msg: `found "-xor"`}},
		{"nothing after -and", `user.city -eq "a" -and`, errorShape{Pos: 22, Expected: "a property such as user.department", Msg: "found the end of the rule"}},
		{"starts with -and", `-and user.city -eq "a"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: `found "-and"`}},
		{"starts with a value", `"Sales" -eq user.department`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: `found "\"Sales\""`}},
		{"operator alone", `-eq "a"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: `found "-eq"`}},

		// Parentheses and strings
		{"unclosed parenthesis", `(user.city -eq "a"`, errorShape{Pos: 18, Expected: "a closing parenthesis", Msg: "expected -and, -or or a closing parenthesis, found the end of the rule"}},
		{"parenthesis closed twice", `user.city -eq "a")`, errorShape{Pos: 17, Expected: "-and or -or", Msg: "this closing parenthesis has no opening one"}},
		{"empty parentheses", `()`, errorShape{Pos: 1, Expected: "a property such as user.department", Msg: `found ")"`}},
		{"unterminated string", `user.city -eq "Lagos`, errorShape{Pos: 14, Expected: `a closing "`, Msg: `the string starting here has no closing "`}},
		{"backtick escapes the closing quote", "user.city -eq \"Lagos`\"", errorShape{Pos: 14, Expected: `a closing "`, Msg: "a backtick before a quote"}},
		{"unterminated single-quoted string", `user.city -in ['Lagos]`, errorShape{Pos: 15, Expected: "a closing '", Msg: "has no closing '"}},

		// Null
		{"null with -startsWith", `user.mail -startsWith null`, errorShape{Pos: 22, Expected: "a value", Msg: "null is compared with -eq or -ne only"}},
		{"$null with -contains", `user.mail -contains $null`, errorShape{Pos: 20, Expected: "a value", Msg: "null is compared with -eq or -ne only"}},
		{"null in a list", `user.city -in ["a", null]`, errorShape{Pos: 20, Expected: "a value", Msg: "null can't be in a list"}},

		// Lists
		{"-in without a list", `user.city -in "Lagos"`, errorShape{Pos: 14, Expected: `a list such as ["a", "b"]`, Msg: `expected a list such as ["a", "b"] after -in or -notIn, found "\"Lagos\""`}},
		{"empty list", `user.city -in []`, errorShape{Pos: 15, Expected: "a value", Msg: "the list is empty"}},
		{"trailing comma", `user.city -in ["a",]`, errorShape{Pos: 19, Expected: "a value", Msg: `expected a value in the list, found "]"`}},
		{"missing comma", `user.city -in ["a" "b"]`, errorShape{Pos: 19, Expected: "a comma or ]", Msg: `expected a comma or ] in the list, found "\"b\""`}},
		{"unclosed list", `user.city -in ["a"`, errorShape{Pos: 18, Expected: "a comma or ]", Msg: "found the end of the rule"}},
		{"list with -eq", `user.city -eq ["a"]`, errorShape{Pos: 14, Expected: "a value", Msg: "a list of values is compared with -in or -notIn, not -eq"}},

		// Types
		{"bool with a word", `user.accountEnabled -eq "yes"`, errorShape{Pos: 24, Expected: "true or false", Msg: `user.accountEnabled is true or false, found "\"yes\""`}},
		{"bool with -in", `user.accountEnabled -in [true]`, errorShape{Pos: 20, Expected: "-eq or -ne", Msg: "user.accountEnabled is true or false: compare it with -eq or -ne, not -in"}},
		{"date with -in", `user.employeeHireDate -in ["2020-01-01"]`, errorShape{Pos: 22, Expected: "-eq, -ne, -le or -ge", Msg: "not -in"}},
		{"date with -contains", `user.employeeHireDate -contains "2020"`, errorShape{Pos: 22, Expected: "-eq, -ne, -le or -ge", Msg: "user.employeeHireDate is a date: compare it with -eq, -ne, -le or -ge, not -contains"}},
		{"date that is not a date", `user.employeeHireDate -ge "yesterday"`, errorShape{Pos: 26, Expected: "a date such as 2020-06-10T18:13:20Z, or system.now", Msg: "expected a date such as 2020-06-10T18:13:20Z or system.now"}},
		{"duration without P", `user.employeeHireDate -ge system.now -plus 1d`, errorShape{Pos: 43, Expected: "a duration such as P1D", Msg: `expected an ISO 8601 duration such as P1D, P2W or PT12H after -plus, found "1d"`}},
		{"duration missing", `user.employeeHireDate -ge system.now -minus`, errorShape{Pos: 43, Expected: "a duration such as P1D", Msg: "found the end of the rule"}},
		{"duration with an empty time part", `user.employeeHireDate -ge system.now -minus P1DT`, errorShape{Pos: 44, Expected: "a duration such as P1D", Msg: `found "P1DT"`}},
		{"-ge on a string", `user.department -ge "a"`, errorShape{Pos: 16, Expected: "an operator such as -eq", Msg: "-ge compares dates, and user.department is not a date"}},
		{"-le on a collection item", `user.otherMails -any (_ -le "a")`, errorShape{Pos: 24, Expected: "an operator such as -eq", Msg: "-le compares dates, and _ is not a date"}},
		{"system.now on a string", `user.department -eq system.now`, errorShape{Pos: 20, Expected: "a value", Msg: "system.now is a date, and user.department is not a date"}},

		// Multi-value
		{"-any on a single-valued property", `user.department -any (_ -eq "a")`, errorShape{Pos: 0, Expected: "a multi-value property", Msg: "-any applies to multi-value properties (user.otherMails, user.proxyAddresses, user.assignedPlans); user.department holds one value"}},
		{"user property inside -any", `user.proxyAddresses -any (user.city -eq "a")`, errorShape{Pos: 26, Expected: "a property such as user.department", Msg: "inside -any or -all a condition tests each item (_), not user.city"}},
		{"_ outside -any", `_ -eq "a"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: "_ stands for each value of a multi-value property and is only valid inside -any or -all"}},
		{"_ inside assignedPlans -any", `user.assignedPlans -any (_ -eq "a")`, errorShape{Pos: 25, Expected: "assignedPlan.<property>", Msg: "reads assignedPlan.capabilityStatus, assignedPlan.service or assignedPlan.servicePlanId, not _"}},
		{"assignedPlan outside -any", `assignedPlan.service -eq "SCO"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: "assignedPlan.service is only valid inside user.assignedPlans -any (...) or -all (...)"}},
		{"assignedPlan inside proxyAddresses -any", `user.proxyAddresses -any (assignedPlan.service -eq "SCO")`, errorShape{Pos: 26, Expected: "a property such as user.department", Msg: "only valid inside user.assignedPlans"}},
		{"unknown assignedPlan field", `user.assignedPlans -any (assignedPlan.skuId -eq "a")`, errorShape{Pos: 25, Expected: "assignedPlan.capabilityStatus, assignedPlan.service or assignedPlan.servicePlanId", Msg: "assignedPlan.skuId is not a property of an assigned plan"}},
		{"assignedPlans compared directly", `user.assignedPlans -contains "SCO"`, errorShape{Pos: 19, Expected: "-any or -all", Msg: "user.assignedPlans holds objects: test them with -any or -all"}},
		{"assignedPlans -eq a string", `user.assignedPlans -eq "SCO"`, errorShape{Pos: 23, Expected: "null", Msg: "compare it only with null"}},
		{"-any inside -any", `user.proxyAddresses -any (_ -any (_ -eq "a"))`, errorShape{Pos: 26, Msg: "-any can't be used inside another -any or -all"}},
		{"-any without parentheses followed by -and", `user.proxyAddresses -any _ -eq "a" -and user.city -eq "b"`, errorShape{Pos: 35, Expected: "a closing parenthesis", Msg: "put the condition after -any in parentheses"}},
		{"-any without a condition", `user.proxyAddresses -any`, errorShape{Pos: 24, Expected: "a property such as user.department", Msg: "found the end of the rule"}},

		// Direct reports
		{"direct reports combined after", `Direct Reports for "` + guid + `" -and user.city -eq "a"`, errorShape{Pos: 58, Expected: "the end of the rule", Msg: "Direct Reports for can't be combined with other conditions"}},
		{"direct reports combined before", `user.city -eq "a" -or Direct Reports for "` + guid + `"`, errorShape{Pos: 22, Msg: "Direct Reports for can't be combined with other conditions"}},
		{"direct reports in parentheses", `(Direct Reports for "` + guid + `")`, errorShape{Pos: 1, Msg: "Direct Reports for can't be combined"}},
		{"direct reports without for", `Direct Reports "` + guid + `"`, errorShape{Pos: 15, Expected: `Direct Reports for "<manager object id>"`, Msg: `expected Direct Reports for "<manager object id>"`}},
		{"direct reports with a name", `Direct Reports for "Alice"`, errorShape{Pos: 19, Expected: "the manager's object id in quotes", Msg: `such as "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb", found "\"Alice\""`}},
		{"direct reports unquoted", `Direct Reports for ` + guid, errorShape{Pos: 19, Expected: "the manager's object id in quotes", Msg: "expected the manager's object id in quotes"}},

		// Properties
		{"extensionAttribute16", `user.extensionAttribute16 -eq "a"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: "user.extensionAttribute16 is not a user property"}},
		{"extension without a name", `user.extension_c272a57b722d4eb29bfe327874ae79cb -eq "a"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: "is not a user property"}},
		{"Graph name that is not a rule property", `user.officeLocation -eq "a"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: "user.officeLocation is not a user property"}},
		{"no object", `department -eq "a"`, errorShape{Pos: 0, Expected: "a property such as user.department", Msg: `found "department"`}},

		// Not supported by entrasync
		{"device rule", `(device.deviceOSType -eq "iPad")`, errorShape{Pos: 1, NotSupported: true, Msg: "not supported by entrasync: device rules (device.deviceOSType); entrasync syncs users"}},
		{"memberOf", `user.memberOf -any (group.objectId -in ['value'])`, errorShape{Pos: 0, NotSupported: true, Msg: "not supported by entrasync: user.memberOf"}},
		{"sipProxyAddress", `user.sipProxyAddress -eq "value"`, errorShape{Pos: 0, NotSupported: true, Msg: "not supported by entrasync: user.sipProxyAddress: Microsoft Graph's user resource does not return it"}},
		{"regex lookahead", `user.displayName -match "^(?!Da)"`, errorShape{Pos: 24, Expected: "a regular expression", NotSupported: true, Msg: "not supported by entrasync: the regular expression \"^(?!Da)\" uses (?!...), .NET syntax"}},
		{"regex backreference", `user.displayName -match "(a)\1"`, errorShape{Pos: 24, Expected: "a regular expression", NotSupported: true, Msg: "uses a backreference"}},

		// Positions on later lines
		{"second line", "user.department -eq \"a\"\n  -and user.city foo", errorShape{Pos: 41, Line: 2, Column: 18, Expected: "an operator such as -eq", Msg: `found "foo"`}},
		{"column counts characters", "user.city -eq \"Zürich\"\r\n-and user.city -eq", errorShape{Pos: 43, Line: 2, Column: 19, Expected: `a value such as "Sales"`, Msg: "found the end of the rule"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, err := rules.Parse(tt.rule)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want an error", tt.rule, rule)
			}
			var e *rules.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) error %T %v, want *rules.Error", tt.rule, err, err)
			}
			want := tt.want
			if want.Line == 0 {
				want.Line, want.Column = 1, want.Pos+1
			}
			got := errorShape{Pos: e.Pos, Line: e.Line, Column: e.Column, Expected: e.Expected, NotSupported: e.NotSupported, Msg: e.Msg}
			if strings.Contains(e.Msg, want.Msg) {
				got.Msg = want.Msg
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Parse(%q) error %q (-want +got):\n%s", tt.rule, err, diff)
			}
			if got, want := errors.Is(err, rules.ErrNotSupported), tt.want.NotSupported; got != want {
				t.Errorf("errors.Is(err, ErrNotSupported) = %v, want %v", got, want)
			}
			if tt.want.NotSupported && !strings.HasPrefix(e.Msg, "not supported by entrasync: ") {
				t.Errorf("Msg %q does not start with \"not supported by entrasync: \"", e.Msg)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct{ rule, want string }{
		{`user.department -eq "Sales" -and user.city foo`, `position 44: expected an operator such as -eq, found "foo"`},
		{"user.department -eq \"Sales\"\n-and user.city foo", `line 2, column 16: expected an operator such as -eq, found "foo"`},
	}
	for _, tt := range tests {
		_, err := rules.Parse(tt.rule)
		if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
			t.Errorf("Parse(%q) error (-want +got):\n%s", tt.rule, diff)
		}
	}
}

// TestMatchErrors: Match fails, rather than guessing, when the engine hands it
// a value of the wrong kind.
func TestMatchErrors(t *testing.T) {
	tests := []struct {
		rule string
		user rules.Attributes
		want string
	}{
		{`user.department -eq "Sales"`, rules.Attributes{"department": rules.BoolValue(true)}, "user property department holds a value of kind bool where a string was expected"},
		{`user.accountEnabled -eq true`, rules.Attributes{"accountEnabled": rules.StringsValue("a")}, "user property accountEnabled (Graph accountEnabled) holds a value of kind strings"},
		{`user.accountEnabled -eq true`, rules.Attributes{"accountEnabled": rules.StringValue("yes")}, "holds a value of kind string"},
		{`user.employeeHireDate -ge system.now`, rules.Attributes{"employeeHireDate": rules.StringValue("soon")}, `user property employeeHireDate holds "soon", which is not a date`},
		{`user.employeeHireDate -ge system.now`, rules.Attributes{"employeeHireDate": rules.BoolValue(true)}, "holds a value of kind bool"},
		{`user.proxyAddresses -any (_ -eq "a")`, rules.Attributes{"proxyAddresses": rules.BoolValue(true)}, "holds a value of kind bool"},
		{`user.proxyAddresses -eq "a"`, rules.Attributes{"proxyAddresses": rules.ObjectsValue()}, "holds a value of kind objects"},
		{`user.assignedPlans -any (assignedPlan.service -eq "a")`, rules.Attributes{"assignedPlans": rules.StringsValue("a")}, "holds a value of kind strings"},
		{`user.assignedPlans -eq null`, rules.Attributes{"assignedPlans": rules.StringsValue("a")}, "holds a value of kind strings"},
		{`Direct Reports for "` + guid + `"`, rules.Attributes{"manager": rules.BoolValue(true)}, "user property manager holds a value of kind bool"},
	}
	for _, tt := range tests {
		rule, err := rules.Parse(tt.rule)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.rule, err)
		}
		_, err = rule.Match(tt.user, rules.Env{Now: now})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Match(%q) error %v, want one containing %q", tt.rule, err, tt.want)
		}
	}
}

// TestMatchNowDefault: a zero Env.Now is the current time.
func TestMatchNowDefault(t *testing.T) {
	rule, err := rules.Parse(`user.employeeHireDate -le system.now`)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := rule.Match(rules.Attributes{"employeeHireDate": rules.StringValue("2000-01-01T00:00:00Z")}, rules.Env{})
	if err != nil || !ok {
		t.Errorf("Match = %v, %v; want true, nil", ok, err)
	}
}
