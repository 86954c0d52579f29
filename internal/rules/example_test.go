package rules_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/entrasync/entrasync/internal/rules"
)

func ExampleParse() {
	rule, err := rules.Parse(`user.department -eq "Sales" -and (user.proxyAddresses -any (_ -endsWith "@contoso.com") -or user.employeeHireDate -ge system.now -minus p30d)`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rule)
	fmt.Println(rule.Properties())

	user := rules.Attributes{
		"department":     rules.StringValue("sales"),
		"proxyAddresses": rules.StringsValue("SMTP:ada@Contoso.com"),
	}
	ok, err := rule.Match(user, rules.Env{Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	fmt.Println(ok, err)
	// Output:
	// user.department -eq "Sales" -and (user.proxyAddresses -any (_ -endsWith "@contoso.com") -or user.employeeHireDate -ge system.now -minus P30D)
	// [department employeeHireDate proxyAddresses]
	// true <nil>
}

func ExampleError() {
	_, err := rules.Parse(`user.department -eq "Sales" -and user.city foo "Lagos"`)
	fmt.Println(err)
	var e *rules.Error
	if errors.As(err, &e) {
		fmt.Printf("Pos %d, expected %s\n", e.Pos, e.Expected)
	}

	_, err = rules.Parse(`device.deviceOSType -eq "iPad"`)
	fmt.Println(errors.Is(err, rules.ErrNotSupported), err)
	// Output:
	// position 44: expected an operator such as -eq, found "foo"
	// Pos 43, expected an operator such as -eq
	// true position 1: not supported by entrasync: device rules (device.deviceOSType); entrasync syncs users, so a rule reads user.<property>
}
