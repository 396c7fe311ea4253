package state_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/p11kms/p11kms/internal/state"
)

// The pipeline's replay check: a nonce is new once, then a replay.
func ExampleNewMemory() {
	const window = 5 * time.Minute
	replay, err := state.NewMemory(window, 1000) // 300,000 requests over the window
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 2 {
		seen, err := replay.Seen(ctx, "AKID-app", []byte("nonce-42"), window)
		switch {
		case errors.Is(err, state.ErrThrottled):
			fmt.Println("throttled")
		case err != nil:
			fmt.Println("error:", err)
		default:
			fmt.Println("seen:", seen)
		}
	}
	fmt.Println("capacity:", replay.Capacity())
	// Output:
	// seen: false
	// seen: true
	// capacity: 300000
}
