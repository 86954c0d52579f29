package rules_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/rules"
)

// now is system.now in every test.
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// A user the docs' examples talk about.
var david = rules.Attributes{
	"id":                rules.StringValue("aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"),
	"displayName":       rules.StringValue("David"),
	"department":        rules.StringValue("Sales"),
	"jobTitle":          rules.StringValue("SDE II"),
	"city":              rules.StringValue("Lagos"),
	"country":           rules.StringValue("US"),
	"userType":          rules.StringValue("Member"),
	"userPrincipalName": rules.StringValue("david@contoso.com"),
	"mail":              rules.StringValue("David@Contoso.com"),
	"mailNickname":      rules.StringValue("david-vendor"),
	"mobilePhone":       rules.StringValue("+1 555 0100"),
	"businessPhones":    rules.StringsValue("+1 555 0199"),
	"accountEnabled":    rules.BoolValue(true),
	"employeeHireDate":  rules.StringValue("2026-12-03T09:00:00Z"),
	"otherMails":        rules.StringsValue("david@fabrikam.com", "dave@outlook.com"),
	"proxyAddresses":    rules.StringsValue("SMTP:david@contoso.com", "smtp:dave@contoso.onmicrosoft.com"),
	"assignedPlans": rules.ObjectsValue(
		map[string]string{"servicePlanId": "efb87545-963c-4e0d-99df-69c6916d9eb0", "service": "exchange", "capabilityStatus": "Enabled"},
		map[string]string{"servicePlanId": "c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "service": "SCO", "capabilityStatus": "Suspended"},
	),
	"extensionAttribute15": rules.StringValue("Marketing"),
	"extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber": rules.StringValue("123"),
	"manager": rules.StringValue("AAAAAAAA-0000-1111-2222-BBBBBBBBBBBB"),
}

// A user with almost nothing set: every property is null.
var empty = rules.Attributes{"id": rules.StringValue("cccccccc-0000-1111-2222-dddddddddddd")}

// TestConformance parses each rule, checks its normal form and the properties
// it reads, and evaluates it for david and for empty.
func TestConformance(t *testing.T) {
	tests := []struct {
		name       string
		rule       string
		normal     string   // String(); "" means the rule as written
		properties []string // nil means not checked
		david      bool
		empty      bool
	}{
		// The docs' own examples (groups-dynamic-membership.md).
		{name: "docs: single expression", rule: `user.department -eq "Sales"`, properties: []string{"department"}, david: true},
		{name: "docs: accountEnabled", rule: `user.accountEnabled -eq true`, properties: []string{"accountEnabled"}, david: true},
		{name: "docs: dirSyncEnabled is Graph's onPremisesSyncEnabled", rule: `user.dirSyncEnabled -eq true`, properties: []string{"onPremisesSyncEnabled"}},
		{name: "docs: employeeId -ne null", rule: `user.employeeId -ne null`},
		{name: "docs: mail -notEndsWith", rule: `user.mail -notEndsWith "@Contoso.com"`, empty: true},
		{name: "docs: mailNickname spelled otherwise", rule: `user.mailNickname -endsWith "-vendor"`, normal: `user.mailNickName -endsWith "-vendor"`, properties: []string{"mailNickname"}, david: true},
		{name: "docs: objectId is Graph's id", rule: `user.objectId -eq "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"`, properties: []string{"id"}, david: true},
		{name: "docs: userType", rule: `user.userType -eq "Member"`, david: true},
		{name: "docs: otherMails -startsWith on the collection", rule: `user.otherMails -startsWith "dave@"`, david: true},
		{name: "docs: otherMails -endsWith without a space", rule: `user.otherMails -endsWith"@outlook.com"`, normal: `user.otherMails -endsWith "@outlook.com"`, david: true},
		{name: "docs: proxyAddresses -startsWith", rule: `user.proxyAddresses -startsWith "SMTP: alias@domain"`},
		{name: "docs: proxyAddresses -notEndsWith: no address ends so", rule: `user.proxyAddresses -notEndsWith "@outlook.com"`, david: true, empty: true},
		{name: "docs: -notEndsWith fails when one address ends so", rule: `user.otherMails -notEndsWith "@outlook.com"`, empty: true},
		{name: "docs: -in", rule: `user.department -in ["50001","50002","50003","50005","50006","50007","50008","50016","50020","50024","50038","50039","51100"]`, normal: `user.department -in ["50001", "50002", "50003", "50005", "50006", "50007", "50008", "50016", "50020", "50024", "50038", "50039", "51100"]`},
		{name: "docs: -ge system.now -plus p1d", rule: `user.employeehiredate -ge system.now -plus p1d`, normal: `user.employeeHireDate -ge system.now -plus P1D`, properties: []string{"employeeHireDate"}, david: true},
		{name: "docs: -le unquoted date", rule: `user.employeehiredate -le 2020-06-10T18:13:20Z`, normal: `user.employeeHireDate -le "2020-06-10T18:13:20Z"`},
		{name: "docs: -match ^Da.*", rule: `user.displayName -match "^Da.*"`, david: true},
		{name: "docs: -match .*vid", rule: `user.displayName -match ".*vid"`, david: true},
		{name: "docs: backtick-escaped quotes", rule: "user.department -eq `\"Sales`\"", normal: "user.department -eq \"`\"Sales`\"\""},
		{name: "docs: null check", rule: `user.department -eq null`, empty: true},
		{name: "docs: en dash for the hyphen", rule: `user.mail –ne null`, normal: `user.mail -ne null`, david: true},
		{name: "docs: -or of parenthesized", rule: `(user.department -eq "Sales") -or (user.department -eq "Marketing")`, normal: `user.department -eq "Sales" -or user.department -eq "Marketing"`, david: true},
		{name: "docs: -and -not", rule: `(user.department -eq "Sales") -and -not (user.jobTitle -startsWith "SDE")`, normal: `user.department -eq "Sales" -and -not (user.jobTitle -startsWith "SDE")`},
		{name: "docs: precedence -and", rule: `user.department –eq "Marketing" –and user.country –eq "US"`, normal: `user.department -eq "Marketing" -and user.country -eq "US"`},
		{name: "docs: precedence with parentheses", rule: `user.country –eq "US" –and (user.department –eq "Marketing" –or user.department –eq "Sales")`, normal: `user.country -eq "US" -and (user.department -eq "Marketing" -or user.department -eq "Sales")`, david: true},
		{name: "docs: assignedPlans example 1", rule: `user.assignedPlans -any (assignedPlan.servicePlanId -eq "efb87545-963c-4e0d-99df-69c6916d9eb0" -and assignedPlan.capabilityStatus -eq "Enabled")`, properties: []string{"assignedPlans"}, david: true},
		{name: "docs: assignedPlans example 2: SCO is suspended", rule: `user.assignedPlans -any (assignedPlan.service -eq "SCO" -and assignedPlan.capabilityStatus -eq "Enabled")`},
		{name: "docs: assignedPlans example 3: no plan", rule: `user.assignedPlans -all (assignedPlan.servicePlanId -eq null)`, empty: true},
		{name: "docs (older): no plan written -eq \"\"", rule: `user.assignedPlans -all (assignedPlan.servicePlanId -eq "")`, empty: true},
		{name: "docs: underscore", rule: `(user.proxyAddresses -any (_ -startsWith "contoso"))`, normal: `user.proxyAddresses -any (_ -startsWith "contoso")`},
		{name: "docs (older): underscore -contains", rule: `(user.proxyAddresses -any (_ -contains "contoso"))`, normal: `user.proxyAddresses -any (_ -contains "contoso")`, david: true},
		{name: "docs: direct reports", rule: `Direct Reports for "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"`, properties: []string{"manager"}, david: true},
		{name: "docs: all users", rule: `user.objectId -ne null`, david: true, empty: true},
		{name: "docs: all members", rule: `(user.objectId -ne null) -and (user.userType -eq "Member")`, normal: `user.objectId -ne null -and user.userType -eq "Member"`, david: true},
		{name: "docs: extensionAttribute15", rule: `(user.extensionAttribute15 -eq "Marketing")`, normal: `user.extensionAttribute15 -eq "Marketing"`, properties: []string{"extensionAttribute15"}, david: true},
		{name: "docs: custom extension property", rule: `user.extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber -eq "123"`, properties: []string{"extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber"}, david: true},
		// groups-dynamic-rule-more-efficient.md
		{name: "efficient: -startswith lower case", rule: `user.city -startswith "Lag"`, normal: `user.city -startsWith "Lag"`, david: true},
		{name: "efficient: -in with spaces", rule: `user.department -eq "Accounts" -and user.city -in ["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]`},
		{name: "efficient: -notin", rule: `user.city -notin ["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]`, normal: `user.city -notIn ["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]`, empty: true},
		{name: "efficient: or without hyphen", rule: `user.city -eq "Lagos" or user.city -startswith "Lag"`, normal: `user.city -eq "Lagos" -or user.city -startsWith "Lag"`, david: true},
		{name: "efficient: -match ago", rule: `user.city -match "ago"`, david: true},
		{name: "efficient: -match lazy", rule: `user.city -match ".*?ago.*"`, david: true},
		{name: "efficient: five -or", rule: "(user.department -eq \"Accounts\" -and user.city -eq \"Lagos\") -or \n(user.department -eq \"Accounts\" -and user.city -eq \"Ibadan\")", normal: `user.department -eq "Accounts" -and user.city -eq "Lagos" -or user.department -eq "Accounts" -and user.city -eq "Ibadan"`},
		// groups-troubleshooting.md, corrected usage
		{name: "troubleshooting: match .*@domain.ext", rule: `(user.userPrincipalName -match ".*@contoso.com")`, normal: `user.userPrincipalName -match ".*@contoso.com"`, david: true},
		{name: "troubleshooting: match @domain.ext$", rule: `(user.userPrincipalName -match "@contoso.com$")`, normal: `user.userPrincipalName -match "@contoso.com$"`, david: true},

		// Every operator, on a string property.
		{name: "-eq ignores case", rule: `user.department -eq "SALES"`, david: true},
		{name: "-ne", rule: `user.department -ne "sales"`, empty: true},
		{name: "-startsWith ignores case", rule: `user.jobTitle -startsWith "sde"`, david: true},
		{name: "-notStartsWith", rule: `user.jobTitle -notStartsWith "sde"`, empty: true},
		{name: "-endsWith", rule: `user.jobTitle -endsWith " ii"`, david: true},
		{name: "-notEndsWith", rule: `user.jobTitle -notEndsWith "II"`, empty: true},
		{name: "-contains", rule: `user.jobTitle -contains "e i"`, david: true},
		{name: "-notContains", rule: `user.jobTitle -notContains "E I"`, empty: true},
		{name: "-match ignores case", rule: `user.displayName -match "^da"`, david: true},
		{name: "-match finds anywhere", rule: `user.displayName -match "vi"`, david: true},
		{name: "-notMatch", rule: `user.displayName -notMatch "^D"`, empty: true},
		{name: "-match backslash is literal", rule: `user.mobile -match "^\+1 555"`, properties: []string{"mobilePhone"}, david: true},
		{name: "-in ignores case", rule: `user.city -in ["lagos", "Abuja"]`, david: true},
		{name: "-notIn", rule: `user.city -notIn ["LAGOS"]`, empty: true},
		{name: "-in with single quotes", rule: `user.city -in ['Lagos']`, normal: `user.city -in ["Lagos"]`, david: true},
		{name: "-in with unquoted numbers", rule: `user.department -in [50001, 50002]`, normal: `user.department -in ["50001", "50002"]`},
		{name: "telephoneNumber reads businessPhones' first", rule: `user.telephoneNumber -eq "+1 555 0199"`, properties: []string{"businessPhones"}, david: true},

		// Operators without the hyphen, in any case.
		{name: "eq without hyphen", rule: `user.department eq "Sales"`, normal: `user.department -eq "Sales"`, david: true},
		{name: "operator upper case", rule: `user.department -EQ "Sales" -AND user.city -STARTSWITH "lag"`, normal: `user.department -eq "Sales" -and user.city -startsWith "lag"`, david: true},
		{name: "and/or/not without hyphen", rule: `not user.department eq "x" and user.city eq "Lagos"`, normal: `-not (user.department -eq "x") -and user.city -eq "Lagos"`, david: true},
		{name: "property in any case", rule: `User.DEPARTMENT -eq "Sales"`, normal: `user.department -eq "Sales"`, david: true},

		// Precedence: -not, then -and, then -or.
		{name: "-and binds tighter than -or", rule: `user.city -eq "x" -and user.city -eq "y" -or user.department -eq "Sales"`, normal: `user.city -eq "x" -and user.city -eq "y" -or user.department -eq "Sales"`, david: true},
		{name: "-or then -and", rule: `user.department -eq "Sales" -or user.city -eq "x" -and user.city -eq "y"`, david: true},
		{name: "parentheses change it", rule: `(user.department -eq "Sales" -or user.city -eq "x") -and user.city -eq "y"`},
		{name: "-not binds tighter than -and", rule: `-not user.city -eq "x" -and user.department -eq "Sales"`, normal: `-not (user.city -eq "x") -and user.department -eq "Sales"`, david: true},
		{name: "-not of a parenthesized -or", rule: `-not (user.city -eq "Lagos" -or user.department -eq "Sales")`, empty: true},
		{name: "-not -not", rule: `-not -not user.city -eq "Lagos"`, normal: `-not -not (user.city -eq "Lagos")`, david: true},
		{name: "nested parentheses kept where they group", rule: `((user.city -eq "Lagos") -and ((user.department -eq "Sales")))`, normal: `user.city -eq "Lagos" -and user.department -eq "Sales"`, david: true},
		{name: "-and inside -and keeps its parentheses", rule: `user.city -eq "Lagos" -and (user.department -eq "Sales" -and user.userType -eq "Member")`, normal: `user.city -eq "Lagos" -and (user.department -eq "Sales" -and user.userType -eq "Member")`, david: true},

		// Null: a missing value and "" are the same; null compares with -eq/-ne.
		{name: "-eq null on a set value", rule: `user.city -eq null`, empty: true},
		{name: "$null", rule: `user.city -eq $null`, normal: `user.city -eq null`, empty: true},
		{name: "-ne $null", rule: `user.city -ne $null`, normal: `user.city -ne null`, david: true},
		{name: "NULL in capitals", rule: `user.city -eq NULL`, normal: `user.city -eq null`, empty: true},
		{name: "quoted null is the word", rule: `user.city -eq "null"`},
		{name: "null string property -startsWith is false", rule: `user.city -startsWith "L"`, david: true},
		{name: "null string property -notStartsWith is true", rule: `user.city -notStartsWith "L"`, empty: true},
		{name: "null bool -eq null", rule: `user.accountEnabled -eq null`, empty: true},
		{name: "null bool -ne true", rule: `user.accountEnabled -ne true`, empty: true},
		{name: "null bool -eq false is false", rule: `user.accountEnabled -eq false`},
		{name: "null collection -eq null", rule: `user.otherMails -eq null`, empty: true},
		{name: "collection -ne null", rule: `user.otherMails -ne null`, david: true},
		{name: "assignedPlans -eq null", rule: `user.assignedPlans -eq null`, empty: true},
		{name: "null date -eq null", rule: `user.employeeHireDate -eq null`, empty: true},
		{name: "null date is neither before nor after", rule: `user.employeeHireDate -le system.now -or user.employeeHireDate -ge system.now`, david: true},
		{name: "null date -ne a date", rule: `user.employeeHireDate -ne "2020-01-01"`, normal: `user.employeeHireDate -ne "2020-01-01T00:00:00Z"`, david: true, empty: true},

		// Booleans.
		{name: "bool false", rule: `user.accountEnabled -eq false`},
		{name: "bool ne false", rule: `user.accountEnabled -ne false`, david: true, empty: true},
		{name: "bool in capitals", rule: `user.accountEnabled -eq TRUE`, normal: `user.accountEnabled -eq true`, david: true},
		{name: "bool quoted", rule: `user.accountEnabled -eq "true"`, normal: `user.accountEnabled -eq true`, david: true},

		// Dates and system.now.
		{name: "system.now alone", rule: `user.employeeHireDate -ge system.now`, david: true},
		{name: "system.now -minus", rule: `user.employeeHireDate -le system.now -minus P30D`},
		{name: "system.now -plus hours", rule: `user.employeeHireDate -le system.now -plus pt45h`, normal: `user.employeeHireDate -le system.now -plus PT45H`, david: true},
		{name: "system.now -plus a week is after the hire", rule: `user.employeeHireDate -le system.now -plus P1W`, david: true},
		{name: "system.now -plus P1Y1M", rule: `user.employeeHireDate -ge system.now -minus P1Y1M`, david: true},
		{name: "date -eq exact instant, other zone", rule: `user.employeeHireDate -eq "2026-12-03T10:00:00+01:00"`, david: true},
		{name: "-le includes the instant", rule: `user.employeeHireDate -le "2026-12-03T09:00:00Z"`, david: true},
		{name: "-ge includes the instant", rule: `user.employeeHireDate -ge "2026-12-03T09:00:00Z"`, david: true},
		{name: "fractional seconds", rule: `user.employeeHireDate -gE "2026-12-03T09:00:00.5Z"`, normal: `user.employeeHireDate -ge "2026-12-03T09:00:00.5Z"`},
		{name: "date-only value is midnight UTC", rule: `user.employeeHireDate -ge "2026-12-03"`, normal: `user.employeeHireDate -ge "2026-12-03T00:00:00Z"`, david: true},

		// Multi-value properties with -any and -all.
		{name: "-any _ -eq ignores case", rule: `user.proxyAddresses -any (_ -eq "smtp:DAVID@contoso.com")`, david: true},
		{name: "-all _", rule: `user.proxyAddresses -all (_ -contains "contoso")`, david: true, empty: true},
		{name: "-all _ fails on one", rule: `user.otherMails -all (_ -endsWith "@fabrikam.com")`, empty: true},
		{name: "-any over nothing is false", rule: `user.otherMails -any (_ -ne "")`, david: true},
		{name: "-any with two conditions on _", rule: `user.proxyAddresses -any (_ -startsWith "smtp:" -and -not (_ -endsWith ".onmicrosoft.com"))`, normal: `user.proxyAddresses -any (_ -startsWith "smtp:" -and -not (_ -endsWith ".onmicrosoft.com"))`, david: true},
		{name: "-any _ -in", rule: `user.otherMails -any (_ -in ["DAVE@outlook.com"])`, david: true},
		{name: "-any _ -match", rule: `user.otherMails -any (_ -match "^dave@")`, david: true},
		{name: "-any without parentheses", rule: `user.otherMails -any _ -eq "dave@outlook.com"`, normal: `user.otherMails -any (_ -eq "dave@outlook.com")`, david: true},
		{name: "-any upper case", rule: `user.otherMails -ANY (_ -eq "dave@outlook.com")`, normal: `user.otherMails -any (_ -eq "dave@outlook.com")`, david: true},
		{name: "-any joined with -and", rule: `user.otherMails -any (_ -eq "dave@outlook.com") -and user.city -eq "Lagos"`, david: true},
		{name: "-not -any", rule: `-not user.otherMails -any (_ -endsWith "@outlook.com")`, normal: `-not (user.otherMails -any (_ -endsWith "@outlook.com"))`, empty: true},
		{name: "assignedPlans -all Enabled", rule: `user.assignedPlans -all (assignedPlan.capabilityStatus -eq "enabled")`, empty: true},
		{name: "assignedPlan field case", rule: `user.assignedPlans -any (AssignedPlan.ServicePlanID -eq "C1EC4A95-1F05-45B3-A911-AA3FA01094F5")`, normal: `user.assignedPlans -any (assignedPlan.servicePlanId -eq "C1EC4A95-1F05-45B3-A911-AA3FA01094F5")`, david: true},
		{name: "collection -contains: some item contains", rule: `user.proxyAddresses -contains "onmicrosoft"`, david: true},
		{name: "collection -in", rule: `user.otherMails -in ["david@fabrikam.com"]`, david: true},
		{name: "collection -notContains: no item contains", rule: `user.otherMails -notContains "outlook"`, empty: true},

		// Strings and quoting.
		{name: "backtick escape inside quotes", rule: "user.department -eq \"say `\"hi`\"\"", normal: "user.department -eq \"say `\"hi`\"\""},
		{name: "double backtick is a backtick", rule: "user.department -eq \"a``b\"", normal: "user.department -eq \"a``b\""},
		{name: "lone backtick is itself", rule: "user.department -eq \"a`b\"", normal: "user.department -eq \"a``b\""},
		{name: "single quotes, doubled inside", rule: `user.surname -eq 'O''Brien'`, normal: `user.surname -eq "O'Brien"`},
		{name: "single quote inside double quotes", rule: `user.surname -ne "O'Brien"`, david: true, empty: true},
		{name: "unquoted number", rule: `user.department -eq 50001`, normal: `user.department -eq "50001"`},
		{name: "multi-line rule", rule: "user.department -eq \"Sales\"\n\t-and user.city -eq \"Lagos\"\r\n", normal: `user.department -eq "Sales" -and user.city -eq "Lagos"`, david: true},
		{name: "unicode value", rule: `user.city -eq "MÜNCHEN"`},
		{name: "longest rule allowed", rule: `user.department -eq "` + strings.Repeat("x", rules.MaxLength-len(`user.department -eq ""`)) + `"`},
		{name: "properties: sorted, each once", rule: `user.city -eq "a" -or user.City -eq "b" -and user.otherMails -any (_ -eq "x") -or user.extensionAttribute3 -eq "y"`, normal: `user.city -eq "a" -or user.city -eq "b" -and user.otherMails -any (_ -eq "x") -or user.extensionAttribute3 -eq "y"`, properties: []string{"city", "extensionAttribute3", "otherMails"}},
		{name: "direct reports words in any case", rule: `direct reports FOR "AAAAAAAA-0000-1111-2222-BBBBBBBBBBBB"`, normal: `Direct Reports for "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"`, david: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, err := rules.Parse(tt.rule)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.rule, err)
			}
			wantNormal := tt.normal
			if wantNormal == "" {
				wantNormal = tt.rule
			}
			if diff := cmp.Diff(wantNormal, rule.String()); diff != "" {
				t.Errorf("String() (-want +got):\n%s", diff)
			}
			if tt.properties != nil {
				if diff := cmp.Diff(tt.properties, rule.Properties()); diff != "" {
					t.Errorf("Properties() (-want +got):\n%s", diff)
				}
			}
			got := map[string]bool{}
			for name, user := range map[string]rules.User{"david": david, "empty": empty} {
				ok, err := rule.Match(user, rules.Env{Now: now})
				if err != nil {
					t.Fatalf("Match(%s): %v", name, err)
				}
				got[name] = ok
			}
			if diff := cmp.Diff(map[string]bool{"david": tt.david, "empty": tt.empty}, got); diff != "" {
				t.Errorf("Match (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNormalFormOverTheLimit: a rule within MaxLength whose normal form is
// longer (every value quoted, "and" written "-and") is accepted as written,
// and TooLong says its normal form would not be (found by FuzzParse in CI).
func TestNormalFormOverTheLimit(t *testing.T) {
	tests := []struct {
		name    string
		rule    string
		tooLong bool
	}{
		{name: "short rule", rule: `user.city -eq a and user.city -eq b`},
		{name: "longest rule allowed, already normal", rule: `user.department -eq "` + strings.Repeat("x", rules.MaxLength-len(`user.department -eq ""`)) + `"`},
		{name: "unquoted values and bare and near the limit", rule: strings.Repeat("user.city -eq a and ", 152) + "user.city -eq a", tooLong: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, err := rules.Parse(tt.rule)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := rule.TooLong(); got != tt.tooLong {
				t.Errorf("TooLong() = %v, want %v (String() is %d characters)", got, tt.tooLong, len(rule.String()))
			}
			_, err = rules.Parse(rule.String())
			if tt.tooLong != (err != nil) {
				t.Errorf("Parse(String()) error = %v, want an error: %v", err, tt.tooLong)
			}
		})
	}
}
