package tencent

import (
	"path/filepath"
	"sync"
	"testing"
)

// Identical TC3 requests (one signature, one target) claimed at once are
// handled as one after the other: the first use records its target and
// slot before the signature, so a concurrent claim that sees the signature
// sees them too. A read may repeat, so all of them pass; a state change is
// performed once, so exactly one passes. Before, the signature was
// recorded first and a concurrent identical read was refused as "already
// used for another action" (found by scripts/sustain: 7 of 109,041 honest
// TC3 requests on two nodes).
func TestConcurrentIdenticalTC3Requests(t *testing.T) {
	byName := map[string]capture{}
	for _, c := range loadCaptures(t, "tc3") {
		byName[filepath.Base(c.name)] = c
	}
	for name, wantPass := range map[string]int{"002-GenerateDataKey.txt": 8, "001-CreateKey.txt": 1} {
		c := byName[name]
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
			passed := 0
			for err := range errs {
				switch {
				case err == nil:
					passed++
				case codeOf(err) != CodeSignatureFailure:
					t.Fatalf("%s round %d: %v", name, round, err)
				}
			}
			if passed != wantPass {
				t.Fatalf("%s round %d: %d of 8 identical concurrent requests passed, want %d", name, round, passed, wantPass)
			}
		}
	}
}
