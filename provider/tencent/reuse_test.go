package tencent

import (
	"sync"
	"testing"
)

// Identical honest TC3 requests (one signature, one target) claimed at
// once all pass: the first use records its target and slot before the
// signature, so a concurrent claim that sees the signature sees them too.
// Before, the signature was recorded first and a concurrent identical
// request was refused as "already used for another action" (found by
// scripts/sustain: 7 of 109,041 honest TC3 requests on two nodes).
func TestConcurrentIdenticalTC3RequestsAllPass(t *testing.T) {
	c := loadCaptures(t, "tc3")[0]
	for round := range 50 {
		h := authOnly(c.when)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, body, err := readRequest(c.raw)
				if err != nil {
					errs <- err
					return
				}
				_, err = h.authenticate(r, body, c.when)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: an identical request claimed concurrently: %v", round, err)
			}
		}
	}
}
