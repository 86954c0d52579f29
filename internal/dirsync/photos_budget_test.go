package dirsync

import (
	"testing"
	"time"
)

// TestPhotoBudgetFor100kUsers is the calculation behind docs/architecture.md
// ("Photo sync: cost"): a 100,000-user tenant's daily photo checks against
// Graph's identity and access read budget, 8,000 resource units per 10 s
// per app for tenants over 500 users (3,500 under 50, 5,000 up to 500). A
// photo GET costs 1 unit, inside a $batch too.
func TestPhotoBudgetFor100kUsers(t *testing.T) {
	const (
		users        = 100_000
		budgetPer10s = 8_000
		changedShare = 0.05 // users added or changed in Entra per day (generous)
		photoChanges = 0.02 // photos changed per day
		runsPerDay   = 36   // a run every 40 minutes, as Entra provisioning
	)
	// Rolling slice: every user once per photoCycle.
	rolling := float64(users) * float64(24*time.Hour) / float64(photoCycle)
	checks := rolling + changedShare*users
	downloads := photoChanges * users
	dailyUnits := checks + downloads
	dailyBudget := float64(budgetPer10s) * 8640
	if share := dailyUnits / dailyBudget; share > 0.01 {
		t.Errorf("photo checks use %.2f%% of the daily budget; want under 1%%", 100*share)
	}
	perRun := dailyUnits / runsPerDay
	// Peak rate: photo items run one after another (each queues the next),
	// each at most photoUsersPerItem metadata requests (in batches of
	// MaxPhotoBatch) plus as many downloads, and each needs at least its
	// batch round trips and a table query: with a conservative 100 ms per
	// round trip, at least 300 ms.
	unitsPerItem := float64(2 * photoUsersPerItem)
	minItem := time.Duration(photoUsersPerItem/MaxPhotoBatch+1) * 100 * time.Millisecond
	peakPer10s := unitsPerItem * float64(10*time.Second) / float64(minItem)
	if peakPer10s > budgetPer10s/2 {
		t.Errorf("photo items can spend %.0f units per 10 s; want at most half the budget (%d)", peakPer10s, budgetPer10s/2)
	}
	// The first pass reads every photo once: metadata and bytes.
	firstPass := time.Duration(2*users/peakPer10s) * 10 * time.Second
	t.Logf("100,000 users: %.0f metadata checks and %.0f downloads a day = %.0f units (%.3f%% of %.0f); %.0f a run; peak %.0f units/10 s (%.0f%% of %d); first pass at least %s",
		checks, downloads, dailyUnits, 100*dailyUnits/dailyBudget, dailyBudget, perRun, peakPer10s, 100*peakPer10s/budgetPer10s, budgetPer10s, firstPass)
}
