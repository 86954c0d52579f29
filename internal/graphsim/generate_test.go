package graphsim

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func mustNew(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

func TestGeneratorIsDeterministicPerSeed(t *testing.T) {
	a := mustNew(t, Config{Users: 700, Seed: 42}).Tenant()
	b := mustNew(t, Config{Users: 700, Seed: 42}).Tenant()
	if diff := cmp.Diff(a.Users(), b.Users()); diff != "" {
		t.Errorf("same seed, different users (-a +b):\n%s", diff)
	}
	if diff := cmp.Diff(a.Groups(), b.Groups()); diff != "" {
		t.Errorf("same seed, different groups (-a +b):\n%s", diff)
	}
	c := mustNew(t, Config{Users: 700, Seed: 43}).Tenant()
	if cmp.Equal(a.Users(), c.Users()) {
		t.Error("seeds 42 and 43 generated identical users")
	}
	// Ids are drawn the same way for added users: same seed, same ids.
	ua, err := a.AddUser(User{Attributes: map[string]any{"displayName": "X"}})
	if err != nil {
		t.Fatal(err)
	}
	ub, _ := b.AddUser(User{Attributes: map[string]any{"displayName": "X"}})
	if ua.ID != ub.ID {
		t.Errorf("added user ids differ for the same seed: %s and %s", ua.ID, ub.ID)
	}
}

// TestGeneratedTenantLooksReal checks the rough edges a directory sync must
// handle are all there, even in a small tenant.
func TestGeneratedTenantLooksReal(t *testing.T) {
	tn := mustNew(t, Config{Users: 2000, Seed: 7}).Tenant()
	users := tn.Users()
	if len(users) != 2000 {
		t.Fatalf("got %d users, want 2000", len(users))
	}
	byID := map[string]User{}
	for _, u := range users {
		byID[u.ID] = u
	}
	var guests, noMail, disabled, unicodeNames, cjk, seniorManagers, withManager, noMobile int
	depts := map[string]bool{}
	mails := map[string][]string{}
	for _, u := range users {
		a := u.Attributes
		for _, p := range []string{"displayName", "userPrincipalName", "accountEnabled", "userType", "businessPhones"} {
			if _, ok := a[p]; !ok {
				t.Fatalf("user %s has no %s: %v", u.ID, p, a)
			}
		}
		if a["userType"] == "Guest" {
			guests++
			if !strings.Contains(a["userPrincipalName"].(string), "#EXT#@") {
				t.Errorf("guest UPN %q lacks #EXT#", a["userPrincipalName"])
			}
		}
		if m, ok := a["mail"].(string); ok {
			mails[strings.ToLower(m)] = append(mails[strings.ToLower(m)], m)
		} else {
			noMail++
		}
		if a["accountEnabled"] == false {
			disabled++
		}
		dn := a["displayName"].(string)
		if utf8.RuneCountInString(dn) != len(dn) {
			unicodeNames++
		}
		if strings.ContainsAny(dn, "山佐鈴日王李김陳") {
			cjk++
		}
		if a["jobTitle"] == "Senior Manager" {
			seniorManagers++
		}
		if d, ok := a["department"].(string); ok {
			depts[d] = true
		}
		if m, ok := a["manager"].(string); ok {
			withManager++
			if _, exists := byID[m]; !exists {
				t.Errorf("user %s has manager %s who does not exist", u.ID, m)
			}
		}
		if _, ok := a["mobilePhone"]; !ok {
			noMobile++
		}
	}
	var sharedMail int
	for _, variants := range mails {
		if len(variants) > 1 {
			sharedMail++
			if variants[0] == variants[1] {
				t.Errorf("shared mail %q should differ in case between the two users", variants[0])
			}
		}
	}
	for name, got := range map[string]int{
		"guests": guests, "users without mail": noMail, "disabled users": disabled,
		"non-ASCII names": unicodeNames, "CJK names": cjk, "Senior Managers": seniorManagers,
		"pairs sharing a mail": sharedMail, "users without mobilePhone": noMobile,
	} {
		if got == 0 {
			t.Errorf("no %s among 2000 generated users", name)
		}
	}
	if withManager < 1500 {
		t.Errorf("only %d users have a manager", withManager)
	}
	for _, d := range []string{"Finance", "Engineering", "Sales", "HR", "Research & Development"} {
		if !depts[d] {
			t.Errorf("no user in department %q (have %v)", d, depts)
		}
	}

	groups := tn.Groups()
	if len(groups) < 10 {
		t.Fatalf("only %d generated groups", len(groups))
	}
	groupIDs := map[string]bool{}
	for _, g := range groups {
		groupIDs[g.ID] = true
	}
	nested := false
	for _, g := range groups {
		for _, m := range g.Members {
			if groupIDs[m] {
				nested = true
			} else if _, ok := byID[m]; !ok {
				t.Errorf("group %s has member %s that is neither user nor group", g.DisplayName, m)
			}
		}
	}
	if !nested {
		t.Error("no generated group has a nested group")
	}
}

func TestGroupsConfig(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		groups int
	}{
		{"empty tenant has no groups", Config{}, 0},
		{"negative turns groups off", Config{Users: 50, Groups: -1}, 0},
		{"fewer than the default set", Config{Users: 50, Groups: 3}, 3},
		{"more than the default set", Config{Users: 50, Groups: 40}, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustNew(t, tt.cfg).Tenant().Groups()
			if len(got) != tt.groups {
				t.Errorf("got %d groups, want %d", len(got), tt.groups)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative users", Config{Users: -1}, "Config.Users"},
		{"page size too big", Config{PageSize: 1000}, "Config.PageSize"},
		{"unknown expiry form", Config{ExpiryForm: "expired-500"}, "Config.ExpiryForm"},
		{"tenant with a slash", Config{TenantID: "a/b"}, "Config.TenantID"},
		{"negative budget", Config{RequestsPer10s: -5}, "Config.RequestsPer10s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestGenerate20kQuickly(t *testing.T) {
	start := time.Now()
	tn := mustNew(t, Config{Users: 20000, Seed: 1}).Tenant()
	users := tn.Users()
	if len(users) != 20000 {
		t.Fatalf("got %d users", len(users))
	}
	if !slices.IsSortedFunc(users, func(a, b User) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("Users() is not sorted by id")
	}
	// Generous: this is about seconds versus minutes, not a benchmark.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("generating and listing 20,000 users took %s", d)
	}
}

// BenchmarkGenerate200k also reports the heap a 200,000-user tenant keeps
// (generated users are computed on demand, so it stays modest).
func BenchmarkGenerate200k(b *testing.B) {
	var s *Server
	for b.Loop() {
		var err error
		s, err = New(Config{Users: 200000, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(s.Tenant().order); n != 200000 {
			b.Fatalf("%d users", n)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heapMiB")
	runtime.KeepAlive(s)
}

func BenchmarkUsers200k(b *testing.B) {
	tn := mustNew(b, Config{Users: 200000, Seed: 1}).Tenant()
	for b.Loop() {
		if n := len(tn.Users()); n != 200000 {
			b.Fatalf("%d users", n)
		}
	}
}

// BenchmarkDeltaPage999 measures serving one 999-user first-round page of a
// 200,000-user tenant (in process, without TLS).
func BenchmarkDeltaPage999(b *testing.B) {
	s := mustNew(b, Config{Users: 200000, Seed: 1})
	tok := s.auth.issue(s.cfg.ClientID)
	h := s.Handler()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "https://127.0.0.1/v1.0/users/delta?$select=displayName,mail,department,jobTitle,manager,businessPhones", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Prefer", "odata.maxpagesize=999")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
