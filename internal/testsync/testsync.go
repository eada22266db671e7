// Package testsync holds what tests of several packages need when they run
// things concurrently: a buffer that many goroutines may log into, and a
// way to start calls together so that they race for real.
package testsync

import (
	"bytes"
	"sync"
)

// Buffer collects output written from concurrent goroutines (a handler's
// logger, an app's stdout). The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p under the buffer's lock.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AtOnce calls fn(0) … fn(n-1) each in its own goroutine, all released
// together once every goroutine is waiting, and returns what each call
// returned, in order.
func AtOnce[T any](n int, fn func(i int) T) []T {
	out := make([]T, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range out {
		wg.Go(func() {
			<-start
			out[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}
