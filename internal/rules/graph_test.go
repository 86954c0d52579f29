package rules

import "testing"

func TestFromGraph(t *testing.T) {
	u := FromGraph(map[string]string{
		"department":     "Finance",
		"accountEnabled": "true",
		"otherMails":     "a@x.example; b@x.example",
		"assignedPlans":  `[{"capabilityStatus":"Enabled","service":"exchange","servicePlanId":"113feb6c-3fe4-4440-bddc-54d774bf0318"}]`,
		"businessPhones": "+1 555 0100",
		"jobTitle":       "",
	})
	tests := []struct {
		rule string
		want bool
	}{
		{`user.department -eq "finance"`, true},
		{`user.accountEnabled -eq true`, true},
		{`user.otherMails -any (_ -eq "b@x.example")`, true},
		{`user.assignedPlans -any (assignedPlan.service -eq "exchange" -and assignedPlan.capabilityStatus -eq "Enabled")`, true},
		{`user.telephoneNumber -eq "+1 555 0100"`, true},
		{`user.jobTitle -eq null`, true},
		{`user.city -eq null`, true},
	}
	for _, tt := range tests {
		r, err := Parse(tt.rule)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.rule, err)
		}
		got, err := r.Match(u, Env{})
		if err != nil || got != tt.want {
			t.Errorf("Match(%q) = %v, %v; want %v", tt.rule, got, err, tt.want)
		}
	}
}
