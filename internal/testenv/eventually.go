package testenv

import "time"

// Eventually calls cond every interval until it returns true, and reports
// whether it did before timeout passed. cond runs on the test's goroutine,
// so it may call t.Fatal (say, when the process it waits on has exited).
//
// The timeout only guards against a hang: make it generous, since a loaded
// machine is slow, and let the caller fail with what it was waiting for.
func Eventually(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}
