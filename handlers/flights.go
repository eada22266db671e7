package handlers

import (
	"context"
	"fmt"
	"sync"
)

// flights runs at most one function per key at a time and hands its result
// to every caller that asked meanwhile, like x/sync/singleflight, with two
// differences that matter here: the work runs on its own goroutine and is
// counted, so Shutdown can wait for work a departed caller left running (a
// refresh that has spent a single-use token must get to store the new
// pair); and each caller stops waiting when its own context ends.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
	wg sync.WaitGroup
	// joined, when set, is called for each caller that joins a running
	// flight instead of starting one (metrics).
	joined func()
}

// Kinds of flights, as metrics name them.
const (
	flightRefresh = "refresh"
	flightRemoval = "removal"
)

type flight struct {
	done chan struct{}
	val  any
	err  error
}

// do starts fn for key unless it is already running, and returns the
// running flight. The counter is raised here, on the caller's goroutine,
// before the caller can return, so Shutdown never misses a flight that a
// request in progress started.
func (g *flights) do(key string, fn func() (any, error)) *flight {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[key]; ok {
		if g.joined != nil {
			g.joined()
		}
		return f
	}
	if g.m == nil {
		g.m = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	g.m[key] = f
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				f.err = fmt.Errorf("handlers: flight %q panicked: %v", key, v)
			}
			g.mu.Lock()
			delete(g.m, key)
			g.mu.Unlock()
			close(f.done)
		}()
		f.val, f.err = fn()
	}()
	return f
}

// wait returns the flight's result, or ctx's error if ctx ends first (the
// flight goes on for the others).
func (f *flight) wait(ctx context.Context) (any, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// drain waits until no flight runs, or ctx ends.
func (g *flights) drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Drain waits until the work requests started and may have left running —
// token refreshes and shared removals, which outlive a caller that hung up
// — has finished, or ctx ends. Call it after http.Server.Shutdown (no new
// requests) and before closing the store: a refresh that has spent a
// single-use token must still be able to store the new pair.
func (h *Handlers) Drain(ctx context.Context) error {
	// Removals first: a removal may still start a refresh.
	if err := h.removals.drain(ctx); err != nil {
		return err
	}
	return h.refreshes.drain(ctx)
}
